/*
 * board.h — geometry of the 3×10 main block (DESIGN.md §8).
 *
 * Positions are numbered 0..29: row-major, top row first, left to right
 * (position = row * 10 + column). Columns map to fingers
 *   LP LR LM LI LI | RI RI RM RR RP
 * and key centres are measured in key widths: x = column + row offset,
 * y = row. The row-staggered ANSI board offsets the rows by −0.25, 0, +0.5
 * (top, home, bottom); the ortholinear board does not offset them.
 *
 * A board is a plain value: fill it with kf_board_init() and share it
 * read-only between threads.
 */
#ifndef KF_LAYOUT_BOARD_H
#define KF_LAYOUT_BOARD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define KF_BOARD_ROWS 3
#define KF_BOARD_COLS 10
#define KF_BOARD_KEYS 30
#define KF_BOARD_HOME_ROW 1

enum kf_board_kind {
	KF_BOARD_ANSI = 0,
	KF_BOARD_ORTHO = 1,
};

/* Left hand first, outside in; then the right hand, inside out. */
enum kf_finger {
	KF_FINGER_LP = 0,
	KF_FINGER_LR,
	KF_FINGER_LM,
	KF_FINGER_LI,
	KF_FINGER_RI,
	KF_FINGER_RM,
	KF_FINGER_RR,
	KF_FINGER_RP,
	KF_FINGER_COUNT
};

enum kf_hand { KF_HAND_LEFT = 0, KF_HAND_RIGHT = 1 };

struct kf_board {
	enum kf_board_kind kind;
	double x[KF_BOARD_KEYS];       /* key centre, key widths */
	double y[KF_BOARD_KEYS];       /* row: 0 top, 1 home, 2 bottom */
	uint8_t finger[KF_BOARD_KEYS]; /* enum kf_finger */
	uint8_t row[KF_BOARD_KEYS];
	uint8_t col[KF_BOARD_KEYS];
};

void kf_board_init(struct kf_board *board, enum kf_board_kind kind);

/* "ansi" or "ortho" (also "ortholinear"); KF_EINVAL for anything else. */
enum kf_err kf_board_kind_parse(const char *name, enum kf_board_kind *out);
/* "ansi" or "ortho"; never NULL. */
const char *kf_board_kind_name(enum kf_board_kind kind);

/* "LP" .. "RP"; never NULL ("?" out of range). */
const char *kf_finger_name(enum kf_finger finger);

static inline enum kf_hand kf_finger_hand(enum kf_finger finger)
{
	return finger >= KF_FINGER_RI ? KF_HAND_RIGHT : KF_HAND_LEFT;
}

/* 0 for a pinky .. 3 for an index finger, on either hand: a move towards the
 * thumb raises the rank (an inward roll). */
static inline int kf_finger_rank(enum kf_finger finger)
{
	return finger <= KF_FINGER_LI ? (int)finger : (int)(KF_FINGER_RP - finger);
}

static inline bool kf_finger_is_index(enum kf_finger finger)
{
	return finger == KF_FINGER_LI || finger == KF_FINGER_RI;
}

#endif
