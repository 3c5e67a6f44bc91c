/*
 * board.c — key positions and the finger map.
 */
#include "layout/board.h"

#include <string.h>

static const uint8_t column_finger[KF_BOARD_COLS] = {
	KF_FINGER_LP, KF_FINGER_LR, KF_FINGER_LM, KF_FINGER_LI, KF_FINGER_LI,
	KF_FINGER_RI, KF_FINGER_RI, KF_FINGER_RM, KF_FINGER_RR, KF_FINGER_RP,
};

/* Horizontal offset of each row, in key widths (DESIGN.md §8). */
static const double row_offset[][KF_BOARD_ROWS] = {
	[KF_BOARD_ANSI] = { -0.25, 0.0, 0.5 },
	[KF_BOARD_ORTHO] = { 0.0, 0.0, 0.0 },
};

static const char *const kind_names[] = {
	[KF_BOARD_ANSI] = "ansi",
	[KF_BOARD_ORTHO] = "ortho",
};

static const char *const finger_names[KF_FINGER_COUNT] = {
	"LP", "LR", "LM", "LI", "RI", "RM", "RR", "RP",
};

void kf_board_init(struct kf_board *board, enum kf_board_kind kind)
{
	memset(board, 0, sizeof(*board));
	board->kind = kind == KF_BOARD_ORTHO ? KF_BOARD_ORTHO : KF_BOARD_ANSI;
	for (int p = 0; p < KF_BOARD_KEYS; p++) {
		int row = p / KF_BOARD_COLS, col = p % KF_BOARD_COLS;

		board->row[p] = (uint8_t)row;
		board->col[p] = (uint8_t)col;
		board->finger[p] = column_finger[col];
		board->x[p] = col + row_offset[board->kind][row];
		board->y[p] = row;
	}
}

enum kf_err kf_board_kind_parse(const char *name, enum kf_board_kind *out)
{
	if (!name)
		return KF_EINVAL;
	if (!strcmp(name, "ansi")) {
		*out = KF_BOARD_ANSI;
		return KF_OK;
	}
	if (!strcmp(name, "ortho") || !strcmp(name, "ortholinear")) {
		*out = KF_BOARD_ORTHO;
		return KF_OK;
	}
	return KF_EINVAL;
}

const char *kf_board_kind_name(enum kf_board_kind kind)
{
	return kind == KF_BOARD_ORTHO ? kind_names[KF_BOARD_ORTHO] : kind_names[KF_BOARD_ANSI];
}

const char *kf_finger_name(enum kf_finger finger)
{
	if ((unsigned)finger >= KF_FINGER_COUNT)
		return "?";
	return finger_names[finger];
}
