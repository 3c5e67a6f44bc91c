/*
 * bus.h — the nng plumbing every KeyForge Hive program shares (docs/bus.md).
 *
 *   addr.h        default addresses, KEYFORGE_* variables, URL checks
 *   tls.h         certificate files for tls+tcp://
 *   sock.h        a socket with its endpoints and their options
 *   pub.h sub.h   pub/sub of topic-prefixed bytes (telemetry, events)
 *   rpc_server.h  the broker's REP contexts feeding an owner thread
 *   rpc_client.h  REQ calls, synchronous or asynchronous
 *
 * This layer moves bytes; proto/ gives them meaning.
 */
#ifndef KF_BUS_BUS_H
#define KF_BUS_BUS_H

#include "bus/addr.h"
#include "bus/bundle.h"
#include "bus/pub.h"
#include "bus/rpc_client.h"
#include "bus/rpc_server.h"
#include "bus/sock.h"
#include "bus/sub.h"
#include "bus/tls.h"

#endif
