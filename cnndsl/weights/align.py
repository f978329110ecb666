"""The network's and the checkpoint's layers lined up, to say what the checkpoint holds in place of a layer
it lacks: only a load that fails lines them up.
"""

from __future__ import annotations

from collections import Counter

MAX_ALIGNMENT_CELLS = 300_000  # beyond this the two orders are lined up place by place, not by edit distance


def alignment(ours: list, theirs: list) -> list[tuple[int | None, int | None]]:
    """The two orders lined up with fewest edits (Levenshtein): pairs (i, j), with None where one side has
    nothing in that place. Only a load that fails lines them up, to say what the checkpoint has instead."""
    start = 0
    while start < min(len(ours), len(theirs)) and ours[start] == theirs[start]:
        start += 1
    end = 0
    while end < min(len(ours), len(theirs)) - start and ours[-1 - end] == theirs[-1 - end]:
        end += 1
    a, b = ours[start : len(ours) - end], theirs[start : len(theirs) - end]
    if len(a) * len(b) > MAX_ALIGNMENT_CELLS:  # a checkpoint of thousands of foreign tensors: place by place
        middle = [
            (start + k if k < len(a) else None, start + k if k < len(b) else None) for k in range(max(len(a), len(b)))
        ]
        return (
            [(k, k) for k in range(start)] + middle + [(len(ours) - end + k, len(theirs) - end + k) for k in range(end)]
        )
    cost = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i]
        for j in range(1, len(b) + 1):
            row.append(min(cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]), cost[i - 1][j] + 1, row[j - 1] + 1))
        cost.append(row)
    middle, i, j = [], len(a), len(b)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            i, j = i - 1, j - 1
            middle.append((start + i, start + j))
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
            middle.append((start + i, None))
        else:
            j -= 1
            middle.append((None, start + j))
    head = [(k, k) for k in range(start)]
    tail = [(len(ours) - end + k, len(theirs) - end + k) for k in range(end)]
    return head + middle[::-1] + tail


def chosen(excess: Counter, outside: list[int], signatures: list[tuple]) -> set[int]:
    """Which leaves to set aside for each shape one side has too many of: first those outside the matching
    stretches of the two orders, then the last ones."""
    chosen, outside_set = set(), set(outside)
    for signature, count in excess.items():
        candidates = [i for i in outside if signatures[i] == signature]
        candidates += [
            i for i in reversed(range(len(signatures))) if signatures[i] == signature and i not in outside_set
        ]
        chosen.update(candidates[:count])
    return chosen
