/*
 * keyforge-layout — analyze and optimize keyboard layouts without the hive.
 */
#include <stdio.h>
#include <string.h>

#include "kf_config.h"
#include "layout/cli/cli.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "analyze", kf_cli_analyze, "statistics of one layout on a corpus" },
	{ "optimize", kf_cli_optimize, "search for a better layout by simulated annealing" },
	{ "corpus", kf_cli_corpus, "build a corpus from text, or describe one" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: keyforge-layout <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out, "\n'keyforge-layout <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("keyforge-layout %s\n", KF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "keyforge-layout: unknown command '%s'; see 'keyforge-layout --help'\n",
		argv[1]);
	return 2;
}
