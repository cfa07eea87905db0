/*
 * ruletest.h - the dry-run front end of the same binary (argv[0] "ruletest").
 */
#ifndef MXGATE_RULETEST_H
#define MXGATE_RULETEST_H

int ruletest_main(int argc, char **argv);

#endif
