/*
 * layout.c — layout strings, named layouts, drawing.
 */
#include "layout/layout.h"

#include <string.h>

#include "common/json.h"

struct named_layout {
	const char *name;
	const char *keys;
};

/* All permutations of "abcdefghijklmnopqrstuvwxyz;,./" (see layout.h on
 * Dvorak's apostrophe). */
static const struct named_layout named_layouts[] = {
	{ "qwerty", "qwertyuiopasdfghjkl;zxcvbnm,./" },
	{ "dvorak", "/,.pyfgcrlaoeuidhtns;qjkxbmwvz" },
	{ "colemak", "qwfpgjluy;arstdhneiozxcvbkm,./" },
	{ "colemak-dh", "qwfpbjluy;arstgmneiozxcdvkh,./" },
	{ "workman", "qdrwbjfup;ashtgyneoizxmcvkl,./" },
};

#define NNAMED (sizeof(named_layouts) / sizeof(named_layouts[0]))

static bool supported_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && !(c >= 'A' && c <= 'Z');
}

/* Length in characters; an invalid UTF-8 byte counts as one character. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0, len = strlen(s);

	for (size_t i = 0; i < len; n++) {
		size_t seq = kf_utf8_seq_len((const unsigned char *)s + i, len - i);

		i += seq ? seq : 1;
	}
	return n;
}

enum kf_err kf_layout_parse(const char *text, struct kf_layout *out, struct kf_strbuf *why)
{
	size_t nchars = utf8_chars(text);
	int seen[128];

	if (nchars != KF_LAYOUT_KEYS) {
		if (why)
			kf_strbuf_addf(why, "layout '%s' has %d characters; a layout has 30 (rows "
				       "left to right, top row first)", text, (int)nchars);
		return KF_ELAYOUT_LEN;
	}
	for (int i = 0; i < KF_LAYOUT_KEYS; i++) {
		if (!supported_char((unsigned char)text[i])) {
			if (why)
				kf_strbuf_addf(why, "layout '%s': character %d is not supported (use "
					       "printable ASCII without space or upper case)", text,
					       i + 1);
			return KF_ELAYOUT_CHAR;
		}
	}
	memset(seen, -1, sizeof(seen));
	for (int i = 0; i < KF_LAYOUT_KEYS; i++) {
		unsigned char c = (unsigned char)text[i];

		if (seen[c] >= 0) {
			if (why)
				kf_strbuf_addf(why, "layout '%s': character %d repeats character %d",
					       text, i + 1, seen[c] + 1);
			return KF_ELAYOUT_DUP;
		}
		seen[c] = i;
	}
	memcpy(out->keys, text, KF_LAYOUT_KEYS);
	out->keys[KF_LAYOUT_KEYS] = '\0';
	return KF_OK;
}

enum kf_err kf_layout_named(const char *name, struct kf_layout *out)
{
	for (size_t i = 0; i < NNAMED; i++) {
		if (!strcmp(name, named_layouts[i].name)) {
			memcpy(out->keys, named_layouts[i].keys, KF_LAYOUT_KEYS + 1);
			return KF_OK;
		}
	}
	return KF_ENOENT;
}

const char *const *kf_layout_names(size_t *count)
{
	static const char *const names[NNAMED] = {
		"qwerty", "dvorak", "colemak", "colemak-dh", "workman",
	};

	*count = NNAMED;
	return names;
}

enum kf_err kf_layout_resolve(const char *name_or_text, struct kf_layout *out,
			      struct kf_strbuf *why)
{
	enum kf_err err;

	if (kf_layout_named(name_or_text, out) == KF_OK)
		return KF_OK;
	err = kf_layout_parse(name_or_text, out, NULL);
	if (err == KF_ELAYOUT_LEN && utf8_chars(name_or_text) < KF_LAYOUT_KEYS) {
		if (why) {
			kf_strbuf_addf(why, "'%s' is neither a layout name (", name_or_text);
			for (size_t i = 0; i < NNAMED; i++)
				kf_strbuf_addf(why, "%s%s", i ? ", " : "", named_layouts[i].name);
			kf_strbuf_addstr(why, ") nor a 30-character layout string");
		}
		return err;
	}
	if (err != KF_OK)
		return kf_layout_parse(name_or_text, out, why);
	return KF_OK;
}

int kf_layout_find(const struct kf_layout *layout, char c)
{
	const char *hit = memchr(layout->keys, c, KF_LAYOUT_KEYS);

	return c && hit ? (int)(hit - layout->keys) : -1;
}

bool kf_layout_same_set(const struct kf_layout *a, const struct kf_layout *b)
{
	for (int p = 0; p < KF_LAYOUT_KEYS; p++)
		if (kf_layout_find(b, a->keys[p]) < 0)
			return false;
	return true;
}

void kf_layout_swap(struct kf_layout *layout, int p, int q)
{
	char c = layout->keys[p];

	layout->keys[p] = layout->keys[q];
	layout->keys[q] = c;
}

void kf_layout_draw(const struct kf_layout *layout, const struct kf_board *board,
		    const char *indent, struct kf_strbuf *out)
{
	/* Two characters per key width: the row offset, relative to the top
	 * row's, becomes an indent of that many half keys. */
	for (int row = 0; row < KF_BOARD_ROWS; row++) {
		int first = row * KF_BOARD_COLS;
		double shift = board->x[first] - board->x[0];
		int pad = (int)(shift * 2.0 + 0.5);

		kf_strbuf_addstr(out, indent);
		for (int i = 0; i < pad; i++)
			kf_strbuf_addch(out, ' ');
		for (int col = 0; col < KF_BOARD_COLS; col++) {
			kf_strbuf_addch(out, layout->keys[first + col]);
			if (col < KF_BOARD_COLS - 1)
				kf_strbuf_addstr(out, col == 4 ? "   " : " ");
		}
		kf_strbuf_addch(out, '\n');
	}
}
