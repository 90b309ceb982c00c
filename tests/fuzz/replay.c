/* replay.c - run a libFuzzer target's LLVMFuzzerTestOneInput() over files,
 * without libFuzzer: `replay_NAME DIR|FILE...` feeds every regular file
 * (directories are read one level deep, in name order) and exits 0 if none
 * crashed. Built with the normal compiler (and the configured sanitizers)
 * as a check program, so `make check` replays every committed corpus.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	int count = 0, bad = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **ents;
		int n;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			bad++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			bad += replay_file(argv[i]) < 0;
			count++;
			continue;
		}
		n = scandir(argv[i], &ents, NULL, by_name);
		if (n < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			bad++;
			continue;
		}
		for (int j = 0; j < n; j++) {
			char path[4096];
			struct stat fst;

			snprintf(path, sizeof(path), "%s/%s", argv[i], ents[j]->d_name);
			if (stat(path, &fst) == 0 && S_ISREG(fst.st_mode)) {
				bad += replay_file(path) < 0;
				count++;
			}
			free(ents[j]);
		}
		free(ents);
	}
	printf("replay: %d inputs, %d unreadable\n", count, bad);
	return bad || !count ? 1 : 0;
}
