"""What a pickle would make an unpickler hold, worked out from its opcodes before it is unpickled.

The C unpickler is fast and builds what the opcodes say, so a small hostile pickle can ask for a lot:
one byte of EMPTY_SET is a 216-byte set, and one LONG_BINPUT with index 2**26 makes the unpickler grow
(and zero) a memo table of 2**27 slots, 1 GiB, from ten bytes. This walk (pickletools.genops, which only
decodes) charges every opcode an upper bound of what it can add (COSTS; strings and bytes by their length),
refuses memo indices that jump ahead of the memo writes seen so far (a real pickler numbers them in order),
and raises OverBudget as soon as the total passes the budget. It creates no object per opcode or global.

A real torch.save data.pkl costs about 32 opcodes and 2.3 KB of estimate per tensor here (the unpickler
really uses well under half of that), so the 48 MiB default budget admits about 20,000 tensors, more than
fit in the 2 MiB data.pkl cap of zip_layout.
"""

from __future__ import annotations

import pickletools

from weightwarden.agent.fingerprint.layouts.budget import OverBudget, mib

# Every opcode: a stack slot and a small object (int, float, tuple of up to 3, empty list or tuple), or a
# dict or list entry it becomes later. Measured objects: int 28-32 B, tuple3 64 B, empty list 56 B.
BASE_COST = 64
COSTS = {
    # Containers whose empty form is large, or that grow as items are added to them.
    "EMPTY_SET": 256, "FROZENSET": 256, "ADDITEMS": 256, "EMPTY_DICT": 128, "DICT": 128,
    # Calls: an instance (a stub, a tensor record) and its argument tuple.
    "REDUCE": 256, "NEWOBJ": 256, "NEWOBJ_EX": 256, "OBJ": 256, "INST": 256, "BUILD": 256,
    # A memo slot (the table doubles when it grows: 2 x 8 bytes per write).
    "PUT": 16, "BINPUT": 16, "LONG_BINPUT": 16, "MEMOIZE": 16,
}
_MEMO_WRITES = {"PUT", "BINPUT", "LONG_BINPUT"}
# Real pickles write memo index n as the n-th write; a little slack for hand-made but harmless ones.
MEMO_SLACK = 256
DEFAULT_BUDGET = 48 << 20


def check_pickle_budget(data: bytes, budget: int = DEFAULT_BUDGET) -> int:
    """The estimated bytes an unpickler holds for the pickle `data`; raises OverBudget past `budget` and
    ValueError when the opcodes do not decode (not a pickle)."""
    spent = 0
    memo_writes = 0
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        spent += COSTS.get(name, BASE_COST)
        if isinstance(arg, str):
            # One astral character makes the whole string 4 bytes a character; str's own header is ~80 B.
            spent += 4 * len(arg) + 32
        elif isinstance(arg, bytes | bytearray):
            spent += len(arg)
        elif isinstance(arg, int):
            spent += arg.bit_length() // 8  # LONG1/LONG4 integers; every other int argument is small
        if name in _MEMO_WRITES:
            if not isinstance(arg, int) or arg > memo_writes + MEMO_SLACK:
                raise OverBudget(f"pickle memo index {arg} far ahead of the {memo_writes} memo writes before it")
            memo_writes += 1
        elif name == "MEMOIZE":
            memo_writes += 1
        if spent > budget:
            raise OverBudget(f"pickle would need more than its {mib(budget)} memory budget to unpickle")
    return spent
