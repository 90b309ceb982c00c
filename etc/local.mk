# Configuration files, schemas and service units.
include $(srcdir)/etc/early.mk
