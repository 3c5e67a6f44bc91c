/*
 * proto/proto.h — the wire protocol of KeyForge Hive (DESIGN.md §2).
 *
 * proto/ is the only code that knows the bytes: typed C structs in, bytes
 * out; bytes in, structs out. No sockets, no logging, no clocks beyond
 * kf_msg_init(). Link with kf_proto_dep. Headers:
 *
 *   proto/telemetry_msgs.h  pub/sub bodies (heartbeat, log event, metric
 *                           update, job event, cluster status, command) and
 *                           the shared enums (job state, worker state,
 *                           liveness, log level)
 *   proto/rpc.h             job params/result/record and every RPC request
 *                           and reply body, with the request/reply headers
 *   proto/msg.h             struct kf_msg (envelope + union of bodies), type
 *                           registry, versions and limits, encode/decode
 *   proto/topic.h           topic builders and the topic + NUL framing
 *
 * Wire reference: docs/protocol.md.
 */
#ifndef KF_PROTO_PROTO_H
#define KF_PROTO_PROTO_H

#include "proto/msg.h"
#include "proto/rpc.h"
#include "proto/telemetry_msgs.h"
#include "proto/topic.h"

#endif
