/*
 * fuzz_layout.c — libFuzzer target for the layout string parser
 * (layout/layout.c kf_layout_parse, kf_layout_resolve): a job's start layout
 * comes from whoever submits it and reaches the worker over the bus, and
 * keyforgectl reads result layouts from the broker's replies.
 *
 * Any input must either be refused with one of the three layout errors, a
 * message, and the output untouched (layout.h promises it), or give 30
 * distinct supported characters that read back as themselves and draw on
 * both boards. A violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/layout.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int layout_error(enum kf_err err)
{
	return err == KF_ELAYOUT_LEN || err == KF_ELAYOUT_CHAR || err == KF_ELAYOUT_DUP;
}

/* A parsed layout: 30 printable, non-space, non-upper-case ASCII
 * characters, none twice, that parse back to the same layout and draw. */
static void check_layout(const struct kf_layout *l)
{
	struct kf_strbuf drawn = KF_STRBUF_INIT;
	struct kf_layout again;
	struct kf_board board;

	CHECK(strlen(l->keys) == KF_LAYOUT_KEYS, "a layout of other than 30 characters");
	for (int i = 0; i < KF_LAYOUT_KEYS; i++) {
		unsigned char c = (unsigned char)l->keys[i];

		CHECK(c > ' ' && c < 0x7f && !(c >= 'A' && c <= 'Z'), "an unsupported character kept");
		CHECK(kf_layout_find(l, (char)c) == i, "a character twice");
	}
	CHECK(kf_layout_parse(l->keys, &again, NULL) == KF_OK, "own keys refused");
	CHECK(!memcmp(&again, l, sizeof again), "keys read back differently");
	for (int kind = KF_BOARD_ANSI; kind <= KF_BOARD_ORTHO; kind++) {
		kf_board_init(&board, (enum kf_board_kind)kind);
		kf_layout_draw(l, &board, "  ", &drawn);
	}
	CHECK(drawn.len > 0, "nothing drawn");
	kf_strbuf_release(&drawn);
}

static void one(enum kf_err (*parse)(const char *, struct kf_layout *, struct kf_strbuf *),
	const char *text)
{
	struct kf_strbuf why = KF_STRBUF_INIT;
	struct kf_layout out, before;
	enum kf_err err;

	memset(&out, 0x5a, sizeof out);
	before = out;
	err = parse(text, &out, &why);
	if (err) {
		CHECK(layout_error(err), "an error that is not a layout error");
		CHECK(why.len > 0, "an error without a message");
		CHECK(!memcmp(&out, &before, sizeof out), "output written on error");
	} else {
		CHECK(why.len == 0, "a message without an error");
		check_layout(&out);
	}
	kf_strbuf_release(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* NUL-terminated text, as it arrives in a msgpack string or a flag;
	 * an embedded NUL ends it there, as it would in the worker. */
	char *text = kf_fuzz_text(data, size);

	if (!text)
		return 0;
	one(kf_layout_parse, text);
	one(kf_layout_resolve, text);
	free(text);
	return 0;
}
