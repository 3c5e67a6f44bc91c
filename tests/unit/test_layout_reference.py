#!/usr/bin/env python3
"""Reference statistics of a layout on an Oxeylyzer n-gram JSON corpus.

An implementation of docs/layout.md's definitions written apart from the C
engine (layout/stats.c), on the ANSI board. Its output for qwerty, colemak-dh
and dvorak on shai.json is the golden data of tests/unit/test_layout_corpora.c.

usage: test_layout_reference.py LAYOUT [CORPUS.json]
       (CORPUS defaults to ../shared/corpora/shai.json beside the checkout)
"""
import json
import os
import sys

FINGER_OF_COLUMN = [0, 1, 2, 3, 3, 4, 4, 5, 6, 7]  # LP LR LM LI LI RI RI RM RR RP
ROW_OFFSET = [-0.25, 0.0, 0.5]                      # ANSI stagger


def finger(p): return FINGER_OF_COLUMN[p % 10]
def hand(p): return 0 if finger(p) < 4 else 1
def rank(p): return finger(p) if finger(p) < 4 else 7 - finger(p)  # 0 pinky .. 3 index
def row(p): return p // 10
def x(p): return p % 10 + ROW_OFFSET[row(p)]


def same_finger(p, q):
    return p != q and finger(p) == finger(q)


def lsb(p, q):
    return (p != q and hand(p) == hand(q) and {rank(p), rank(q)} == {2, 3}
            and abs(x(p) - x(q)) >= 1.5)


def scissor(p, q):
    if hand(p) != hand(q) or abs(rank(p) - rank(q)) != 1 or abs(row(p) - row(q)) != 2:
        return False
    for a, b in ((p, q), (q, p)):
        if rank(a) == 3 and row(a) > row(b):  # index on the lower key
            return False
    return True


def trigram_class(a, b, c):
    pairs = same_finger(a, b) + same_finger(b, c)
    if pairs == 2:
        return 'sft'
    if pairs == 1:
        return 'sfb_trigram'
    if a == b or b == c:
        return 'repeat'
    h = (hand(a), hand(b), hand(c))
    if h[0] != h[1] and h[1] != h[2]:
        return 'alt_sfs' if finger(a) == finger(c) and a != c else 'alternate'
    if h[0] == h[1] != h[2]:
        first, second = a, b
    elif h[0] != h[1] == h[2]:
        first, second = b, c
    else:
        r = [rank(a), rank(b), rank(c)]
        if r[0] < r[1] < r[2] or r[0] > r[1] > r[2]:
            return 'onehand'
        return 'redirect' if 3 in r else 'bad_redirect'
    return 'inroll' if rank(second) > rank(first) else 'outroll'


def main():
    layout = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        here, '..', '..', '..', 'shared', 'corpora', 'shai.json')
    corpus = json.load(open(path, encoding='utf-8'))
    pos = {ch: i for i, ch in enumerate(layout)}
    stats = {k: 0.0 for k in ('sfb', 'sfs', 'lsb', 'scissors')}
    for gram, freq in corpus['bigrams'].items():
        if len(gram) == 2 and gram[0] in pos and gram[1] in pos:
            p, q = pos[gram[0]], pos[gram[1]]
            stats['sfb'] += freq if same_finger(p, q) else 0
            stats['lsb'] += freq if lsb(p, q) else 0
            stats['scissors'] += freq if scissor(p, q) else 0
    for gram, freq in corpus['skipgrams'].items():
        if len(gram) == 2 and gram[0] in pos and gram[1] in pos:
            stats['sfs'] += freq if same_finger(pos[gram[0]], pos[gram[1]]) else 0
    for gram, freq in corpus['trigrams'].items():
        if len(gram) == 3 and all(ch in pos for ch in gram):
            cls = trigram_class(*(pos[ch] for ch in gram))
            stats[cls] = stats.get(cls, 0.0) + freq
    stats['redirect'] = stats.get('redirect', 0.0) + stats.get('bad_redirect', 0.0)
    for key in sorted(stats):
        print(key, repr(stats[key]))


if __name__ == '__main__':
    main()
