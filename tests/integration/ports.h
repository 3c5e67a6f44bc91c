/*
 * ports.h — loopback ports for the programs an integration test starts.
 *
 * A test picks a port, then the program it starts binds it a moment later.
 * A port the kernel hands out for bind(0) lies in its ephemeral range
 * (net.ipv4.ip_local_port_range, 32768–60999 here), where the local end of
 * any connection made meanwhile — another test's, running beside this one —
 * can take it first: a CI run failed that way (test_ctl.sh, port 46462).
 * These ports are drawn below that range instead, at random, and checked
 * free by a bind.
 */
#ifndef KF_TESTS_PORTS_H
#define KF_TESTS_PORTS_H

#define KF_TEST_PORT_MIN 20000u
#define KF_TEST_PORT_END 32768u  /* the ephemeral range starts here */

/* A TCP port on 127.0.0.1 in [KF_TEST_PORT_MIN, KF_TEST_PORT_END) that was
 * free a moment ago, never the same one twice in a process; 0 if none was
 * found in 200 draws. */
unsigned kf_test_free_port(void);

#endif
