"""Candidate tensors among many thousands: a MinHash band index.

Each indexed tensor contributes its BANDS band keys (corner.py). A tensor whose corner shares most of its
largest (cell, sign) pairs with an indexed one shares at least one band key with it with high probability;
an unrelated one almost never does (Jaccard about 0.07: 12 bands of 5 hashes give 2e-5 per pair).

Storage is two sorted numpy arrays (keys, tensor ids) plus a small dict of recent additions that is merged
in when it grows, so the index costs 12 bytes per band key and a lookup of a whole file's keys is one
searchsorted. Removed ids are dropped at the next merge and filtered out until then.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

MERGE_AT = 1 << 14


class BandIndex:
    def __init__(self) -> None:
        self._keys = np.zeros(0, dtype=np.uint64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._recent: defaultdict[int, list[int]] = defaultdict(list)
        self._recent_count = 0
        self._removed: set[int] = set()

    def add(self, tensor_id: int, keys: np.ndarray) -> None:
        self._removed.discard(tensor_id)
        for key in keys.tolist():
            self._recent[key].append(tensor_id)
        self._recent_count += len(keys)
        if self._recent_count >= MERGE_AT:
            self._merge()

    def remove(self, tensor_id: int) -> None:
        self._removed.add(tensor_id)
        if len(self._removed) >= MERGE_AT:
            self._merge()

    def candidates(self, keys: np.ndarray) -> set[int]:
        """Ids of the indexed tensors sharing at least one band key with `keys`."""
        return self.candidates_of(keys.reshape(1, -1))[0]

    def candidates_of(self, keys: np.ndarray) -> list[set[int]]:
        """candidates() for each row of `keys` (one row of band keys per query), in one search."""
        found: list[set[int]] = [set() for _ in range(len(keys))]
        if not len(keys):
            return found
        if len(self._keys):
            flat = keys.reshape(-1)
            left = np.searchsorted(self._keys, flat, side="left")
            right = np.searchsorted(self._keys, flat, side="right")
            width = keys.shape[1]
            for position in np.flatnonzero(right > left).tolist():
                found[position // width].update(self._ids[left[position]:right[position]].tolist())
        if self._recent:
            for row, row_keys in enumerate(keys.tolist()):
                for key in row_keys:
                    found[row].update(self._recent.get(key, ()))
        if self._removed:
            found = [ids - self._removed for ids in found]
        return found

    def _merge(self) -> None:
        recent_keys = np.fromiter((k for k, ids in self._recent.items() for _ in ids), dtype=np.uint64,
                                  count=self._recent_count)
        recent_ids = np.fromiter((i for ids in self._recent.values() for i in ids), dtype=np.int64,
                                 count=self._recent_count)
        keys = np.concatenate([self._keys, recent_keys])
        ids = np.concatenate([self._ids, recent_ids])
        if self._removed:
            keep = ~np.isin(ids, np.fromiter(self._removed, dtype=np.int64, count=len(self._removed)))
            keys, ids = keys[keep], ids[keep]
        order = np.argsort(keys, kind="stable")
        self._keys, self._ids = keys[order], ids[order]
        self._recent.clear()
        self._recent_count = 0
        self._removed.clear()

    def __len__(self) -> int:
        return len(self._keys) + self._recent_count
