# cython: language_level=3, boundscheck=False, wraparound=False
"""Where keys go, compiled implementation (twin of ``_slots_py.py``): Valkey Cluster
hash slots, and the per-key loops of splitting commands by place."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

__all__ = ["SLOTS", "group_parts", "key_slot", "merge_values", "split_keys", "take_replies"]

SLOTS = 16384

cdef unsigned short _TABLE[256]


cdef void _fill():
    cdef unsigned int byte, crc, bit
    for byte in range(256):
        crc = byte << 8
        for bit in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        _TABLE[byte] = crc & 0xFFFF


_fill()


def key_slot(key) -> int:
    """The cluster slot of ``key`` (str or bytes)."""
    cdef bytes data = key.encode() if isinstance(key, str) else bytes(key)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), start = -1, end = -1, i
    cdef unsigned int crc = 0
    for i in range(n):
        if p[i] == b'{':
            start = i
            break
    if start >= 0:
        for i in range(start + 1, n):
            if p[i] == b'}':
                end = i
                break
        if end > start + 1:
            p = p + start + 1
            n = end - start - 1
    for i in range(n):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ p[i]) & 0xFF]
    return crc % 16384


# -- splitting commands by place (shards or slots), for the routers and the cluster plan


def split_keys(tuple command, place_of):
    """Split a command over many keys (MGET, DEL, ...) by the place ``place_of(key)``
    names: ``(parts, spots)``, ``parts`` the ``(place, command)`` pairs and ``spots``
    the positions in ``command`` of each part's keys; ``spots`` is None when every
    key has one place (the command goes whole)."""
    cdef dict positions = {}
    cdef Py_ssize_t position
    cdef list found
    place = None
    for position in range(1, len(command)):
        place = place_of(command[position])
        found = positions.get(place)
        if found is None:
            positions[place] = [position]
        else:
            found.append(position)
    if len(positions) == 1:
        return [(place, command)], None
    verb = command[0]
    parts = []
    for place, found in positions.items():
        if len(found) == 1:
            parts.append((place, (verb, command[found[0]])))
        else:
            parts.append((place, (verb, *[command[spot] for spot in found])))
    return parts, list(positions.values())


def merge_values(list spots, Py_ssize_t count, list replies):
    """The reply of an MGET of ``count`` keys split by ``split_keys``: each part's
    values put back at its keys' positions."""
    values = [None] * count
    for found, reply in zip(spots, replies):
        for spot, value in zip(found, reply):
            values[spot - 1] = value
    return values


def group_parts(list slots, dict todo, dict asking):
    """``{node: ([part number, ...], [command, ...])}``: where each part still to run
    (``todo``: number -> (slot, command)) goes, in order, by the slot map ``slots``; a
    part redirected by ASK (``asking``: number -> node) goes to the named node after
    an ``ASKING`` (numbered None). A slot no node serves raises ``LookupError(slot)``."""
    cdef dict per_node = {}
    cdef tuple group
    for number, (slot, command) in todo.items():
        target = asking.get(number) if asking else None
        if target is None:
            node = slots[slot]
            if node is None:
                raise LookupError(slot)
            group = per_node.get(node)
            if group is None:
                per_node[node] = ([number], [command])
            else:
                group[0].append(number)
                group[1].append(command)
        else:
            group = per_node.get(target)
            if group is None:
                group = per_node[target] = ([], [])
            group[0].extend((None, number))
            group[1].extend((("ASKING",), command))
    return per_node


def take_replies(list numbers, list replies, list replies_of, dict todo):
    """Keep the replies of one node's pipeline (``numbers[i]``: the part the ``i``th
    reply answers, None for ASKING's): each reply that is not an error goes to
    ``replies_of[number]`` and its part leaves ``todo``; the error replies are
    returned as ``[(number, error), ...]`` for the plan to judge."""
    cdef list errors = []
    for number, reply in zip(numbers, replies):
        if number is None:
            continue
        if isinstance(reply, Exception):
            errors.append((number, reply))
            continue
        replies_of[number] = reply
        del todo[number]
    return errors
