"""Tensor similarity: recognising a protected model after it was quantised, fine-tuned, pruned, merged
or exported, and telling its private weights from the public ones it was fine-tuned from.

corner.py compares two tensors' corners (fingerprint/blocks.py) by the signs of their non-zero values;
lsh.py finds candidate tensors among many thousands by MinHash bands; delta.py measures whether a file
carries a fine-tune's change from its public base; matcher.py scores whole models.
"""
