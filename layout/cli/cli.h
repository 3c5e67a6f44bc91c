/*
 * cli.h — subcommands of keyforge-layout. Each takes the arguments after
 * its own name (argv[0] is the subcommand name) and returns the process exit
 * status: 0 success, 1 failure (one line on stderr says why), 2 usage error.
 */
#ifndef KF_LAYOUT_CLI_H
#define KF_LAYOUT_CLI_H

int kf_cli_analyze(int argc, char **argv);
int kf_cli_optimize(int argc, char **argv);
int kf_cli_corpus(int argc, char **argv);

#endif
