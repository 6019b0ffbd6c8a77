"""Score a file against every protected model: which of a model's private tensors it holds, how similar.

References are the informative tensors of protected files and of public ones (Hugging Face cache blobs,
Ollama library models, imported public prints). Each protected tensor has at most one public counterpart:
the public tensor it matches best (kept up to date as either side comes and goes). That splits a protected
model in three:
- private tensors with no public counterpart (trained from scratch, or a base the machine does not know):
  a file holding a matching tensor holds that tensor;
- tensors changed from their public counterpart by a fine-tune: a file holds them only when, pooled over
  the model, it carries the change (delta.py), not just the base they share;
- tensors equal to their counterpart (frozen layers): public weights, no evidence at all.
A model's similarity is the element-weighted share of its private tensors the file holds, each weighted
by how well it matched (sign agreement scaled from 0.8..1 to 0.5..1); a copy of the public base, its
quantisations and other fine-tunes of it score 0.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from weightwarden.agent.events import TensorPrint
from weightwarden.agent.similarity import corner as corners
from weightwarden.agent.similarity import delta
from weightwarden.agent.similarity.corner import Corner
from weightwarden.agent.similarity.lsh import BandIndex

# The file carries nearly all of the fine-tune's change: copies measure 0.985 to 1.31, another fine-tune of
# the same base with the same recipe 0.68 to 0.71, and 0.87 when it was fine-tuned once more (two changes
# that share the recipe's common direction); docs/benchmarks.md "Similarity prints"...
DELTA_MIN_SHARE = 0.92
DELTA_MIN_Z = 5.0  # ...and that is five standard errors away from carrying none of it
NAMES_LISTED = 12


@dataclass(frozen=True, slots=True)
class Reference:
    id: int
    model: str
    path: str
    name: str
    fingerprint: str
    elements: int
    bytes: int
    corner: Corner
    public: bool


@dataclass(frozen=True, slots=True)
class TensorMatch:
    """A file derived from a protected model: which of the model's private tensors it holds, how similar.

    Totals are over the model's private tensors across all its files (shards), so a file holding one shard
    of a four-shard model reports about a quarter; bytes are counted as the source stores them.
    """

    model: str
    source_paths: tuple[str, ...]
    matched_tensors: int
    total_tensors: int
    matched_bytes: int
    total_bytes: int
    matched_elements: int
    total_elements: int
    similarity: float = 0.0
    agreement: float = 0.0  # mean sign agreement of the matched tensors
    matched_names: tuple[str, ...] = ()
    public_tensors: int = 0  # the model's tensors that are public weights (frozen, or only the base matched)
    public_base: str | None = None  # the public model its fine-tuned tensors come from
    delta_share: float | None = None  # the share of the fine-tune's change the file carries
    delta_z: float | None = None

    @property
    def tensor_share(self) -> float:
        return self.matched_tensors / self.total_tensors if self.total_tensors else 0.0

    @property
    def byte_share(self) -> float:
        return self.matched_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass
class _Hit:
    agreement: float
    query: Corner  # the file's corner in the reference's orientation


@dataclass
class _Counterpart:
    reference: Reference
    transposed: bool
    agreement: float


@dataclass
class SimilarityIndex:
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _refs: dict[int, Reference] = field(default_factory=dict)
    _by_path: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _by_model: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _protected: BandIndex = field(default_factory=BandIndex)
    _public: BandIndex = field(default_factory=BandIndex)
    _counterparts: dict[int, _Counterpart] = field(default_factory=dict)

    def add(self, path: str, model: str, tensors: Iterable[TensorPrint], *, public: bool) -> None:
        """Index the informative tensors of one file (replacing what was indexed at `path`)."""
        self.remove(path)
        listed = list(tensors)
        prepared = corners.prepare([t.block for t in listed], both=True)
        keys = corners.bands(prepared)
        for position in range(0, len(prepared.corners), 2):  # each corner, then its transpose
            tensor = listed[prepared.sources[position]]
            found, flipped = prepared.corners[position], prepared.corners[position + 1]
            ref = Reference(self._next_id(), model, path, tensor.name, tensor.fingerprint, tensor.elements,
                            tensor.bytes, found, public)
            self._refs[ref.id] = ref
            self._by_path[path].append(ref.id)
            self._by_model[model].add(ref.id)
            if public:
                self._public.add(ref.id, keys[position])
                self._adopt(ref, flipped, keys[position], keys[position + 1])
            else:
                self._protected.add(ref.id, keys[position])
                self._find_counterpart(ref, flipped, keys[position], keys[position + 1])

    def remove(self, path: str) -> None:
        orphans: list[int] = []
        for ref_id in self._by_path.pop(path, []):
            ref = self._refs.pop(ref_id)
            self._by_model[ref.model].discard(ref_id)
            if not self._by_model[ref.model]:
                del self._by_model[ref.model]
            (self._public if ref.public else self._protected).remove(ref_id)
            self._counterparts.pop(ref_id, None)
            if ref.public:
                orphans.extend(i for i, c in self._counterparts.items() if c.reference.id == ref_id)
        for ref_id in orphans:
            del self._counterparts[ref_id]
            if ref_id in self._refs:
                ref = self._refs[ref_id]
                prepared = corners.prepare([ref.corner.block], both=True)
                if len(prepared.corners) == 2:
                    keys = corners.bands(prepared)
                    self._find_counterpart(ref, prepared.corners[1], keys[0], keys[1])

    def match(self, tensors: Iterable[TensorPrint], excluded: Callable[[str], bool] = lambda path: False,
              ) -> list[TensorMatch]:
        """Protected models some of whose private tensors `tensors` hold, most similar first. References
        at paths `excluded` says are the file itself (or another name of it) are left out."""
        # Both orientations of every corner: a transposed copy (an ONNX MatMul weight) matches the second.
        prepared = corners.prepare([t.block for t in tensors], both=True)
        hits: dict[int, _Hit] = {}
        for query, found in zip(prepared.corners, self._protected.candidates_of(corners.bands(prepared)),
                                strict=True):
            for ref_id in found:
                ref = self._refs.get(ref_id)
                if ref is None or excluded(ref.path):
                    continue
                share = corners.matches(query, ref.corner)
                if share is not None and (ref_id not in hits or share > hits[ref_id].agreement):
                    hits[ref_id] = _Hit(share, query)
        models = {self._refs[ref_id].model for ref_id in hits}
        scored = [self._score(model, hits, excluded) for model in models]
        return sorted((s for s in scored if s is not None and s.matched_tensors),
                      key=lambda s: (-s.similarity, -s.matched_tensors, s.model))

    def counterpart(self, path: str, name: str) -> tuple[str, str] | None:
        """(public model, public file) of a protected tensor's counterpart: for reports and tests."""
        for ref_id in self._by_path.get(path, []):
            if self._refs[ref_id].name == name and ref_id in self._counterparts:
                other = self._counterparts[ref_id].reference
                return other.model, other.path
        return None

    def __len__(self) -> int:
        return len(self._refs)

    def _next_id(self) -> int:
        return next(self._ids)

    def _find_counterpart(self, ref: Reference, flipped: Corner, keys: np.ndarray, flipped_keys: np.ndarray) -> None:
        best: _Counterpart | None = None
        for transposed, query, query_keys in ((False, ref.corner, keys), (True, flipped, flipped_keys)):
            for other_id in self._public.candidates(query_keys):
                other = self._refs.get(other_id)
                share = corners.matches(query, other.corner) if other is not None else None
                if other is not None and share is not None and (best is None or share > best.agreement):
                    best = _Counterpart(other, transposed, share)
        if best is not None:
            self._counterparts[ref.id] = best

    def _adopt(self, public: Reference, flipped: Corner, keys: np.ndarray, flipped_keys: np.ndarray) -> None:
        """A new public tensor becomes the counterpart of the protected tensors it matches best."""
        for transposed, query, query_keys in ((False, public.corner, keys), (True, flipped, flipped_keys)):
            for ref_id in self._protected.candidates(query_keys):
                ref = self._refs.get(ref_id)
                share = corners.matches(query, ref.corner) if ref is not None else None
                current = self._counterparts.get(ref_id)
                if share is not None and (current is None or share > current.agreement):
                    self._counterparts[ref_id] = _Counterpart(public, transposed, share)

    def _score(self, model: str, hits: dict[int, _Hit], excluded: Callable[[str], bool]) -> TensorMatch | None:
        refs = _distinct((self._refs[i] for i in self._by_model.get(model, ()) if not excluded(self._refs[i].path)),
                         hits)
        direct: list[Reference] = []
        changed: list[tuple[Reference, np.ndarray]] = []  # with the base corner in the reference's orientation
        public = 0
        bases: dict[str, None] = {}
        for ref in refs:
            counterpart = self._counterparts.get(ref.id)
            if counterpart is None:
                direct.append(ref)
                continue
            base = counterpart.reference.corner.values
            base = base.T if counterpart.transposed else base
            bases[counterpart.reference.model] = None
            if delta.changed(ref.corner.values, base):
                changed.append((ref, base))
            else:
                public += 1
        matched = [ref for ref in direct if ref.id in hits]
        fits = [fit for ref, base in changed if ref.id in hits
                for fit in [delta.fit(hits[ref.id].query.values, ref.corner.values, base)] if fit is not None]
        pooled = delta.pool(fits)
        carries = pooled is not None and pooled[0] >= DELTA_MIN_SHARE and pooled[1] >= DELTA_MIN_Z
        if carries:
            matched += [ref for ref, _ in changed if ref.id in hits]
        else:
            public += sum(1 for ref, _ in changed if ref.id in hits)
        private = direct + [ref for ref, _ in changed]
        if not matched or not private:
            return None
        private_elements = sum(r.elements for r in private)
        weighted = sum(r.elements * (0.5 + 2.5 * (hits[r.id].agreement - corners.MATCH_AGREEMENT)) for r in matched)
        agreement = sum(hits[r.id].agreement for r in matched) / len(matched)
        paths = tuple(sorted({r.path for r in matched}))
        return TensorMatch(
            model=model, source_paths=paths, matched_tensors=len(matched), total_tensors=len(private),
            matched_bytes=sum(r.bytes for r in matched), total_bytes=sum(r.bytes for r in private),
            matched_elements=sum(r.elements for r in matched), total_elements=private_elements,
            similarity=round(weighted / private_elements, 4) if private_elements else 0.0,
            agreement=round(agreement, 4),
            matched_names=tuple(r.name for r in sorted(matched, key=lambda r: -r.elements)[:NAMES_LISTED]),
            public_tensors=public, public_base=next(iter(bases), None),
            delta_share=round(pooled[0], 4) if pooled is not None else None,
            delta_z=round(pooled[1], 2) if pooled is not None else None)


def _distinct(refs: Iterable[Reference], hits: dict[int, _Hit]) -> list[Reference]:
    """One reference per distinct tensor, the matched one where there is one: a model's converted sibling
    files hold the same tensors."""
    seen: dict[str, Reference] = {}
    for ref in sorted(refs, key=lambda r: r.id not in hits):
        seen.setdefault(ref.fingerprint, ref)
    return list(seen.values())
