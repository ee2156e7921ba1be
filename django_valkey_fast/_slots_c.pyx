# cython: language_level=3, boundscheck=False, wraparound=False
"""Where keys go, compiled implementation (twin of ``_slots_py.py``): Valkey Cluster
hash slots, and the per-key loops of splitting commands by place."""

cimport cython
from libc.stdlib cimport free, malloc
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL

__all__ = ["SLOTS", "group_parts", "key_slot", "merge_values", "place_values", "split_by_node",
           "split_keys", "take_replies"]

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


cdef inline int _slot_of(key) except -1:
    cdef const char* p
    cdef Py_ssize_t n, start = -1, end = -1, i
    cdef unsigned int crc = 0
    cdef bytes data
    if isinstance(key, str):
        # The str's own UTF-8 (for ASCII, its very characters): no bytes made per key;
        # a subclass's text whatever its __str__ says (SafeString, CacheKey).
        p = PyUnicode_AsUTF8AndSize(key, &n)
    else:
        data = bytes(key)
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    cdef const unsigned char* u = <const unsigned char*>p
    for i in range(n):
        if u[i] == b'{':
            start = i
            break
    if start >= 0:
        for i in range(start + 1, n):
            if u[i] == b'}':
                end = i
                break
        if end > start + 1:
            u = u + start + 1
            n = end - start - 1
    for i in range(n):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ u[i]) & 0xFF]
    return crc % 16384


def key_slot(key) -> int:
    """The cluster slot of ``key`` (str or bytes)."""
    return _slot_of(key)


# -- splitting commands by place (shards or slots), for the routers and the cluster plan


def split_keys(command, place_of, one_key_verb=None):
    """Split a command over many keys (MGET, DEL, ...) by the place ``place_of(key)``
    names: ``(parts, spots)``, ``parts`` the ``(place, command)`` pairs and ``spots``
    the positions in ``command`` of each part's keys; ``spots`` is None when every
    key has one place (the command goes whole). A part of one key is sent as
    ``one_key_verb`` when given (GET for MGET: a bare reply, no list)."""
    cdef tuple args = command if type(command) is tuple else tuple(command)
    cdef Py_ssize_t count = len(args), position
    if place_of is key_slot and count > 2:
        return _split_by_slot(command, args, count, one_key_verb)
    cdef dict positions = {}
    place = None
    for position in range(1, count):
        place = place_of(args[position])
        spots = positions.get(place)
        if spots is None:
            positions[place] = [position]
        else:
            (<list>spots).append(position)
    if len(positions) == 1:
        return [(place, command)], None
    if count == 0:
        raise IndexError("tuple index out of range")  # (as the pure twin's command[0])
    verb = args[0]
    single = verb if one_key_verb is None else one_key_verb
    cdef list parts = []
    cdef list found
    for place, spots in positions.items():
        found = <list>spots
        if len(found) == 1:
            parts.append((place, (single, args[<Py_ssize_t>found[0]])))
        else:
            parts.append((place, (verb, *[args[<Py_ssize_t>spot] for spot in found])))
    return parts, list(positions.values())


cdef class _SlotGroups:
    # The keys of a command grouped by slot in C: each key's group, each group's slot
    # (first-seen order) and size, found in a small open-addressing table (no Python
    # dict, no int object per key).
    cdef int* memory
    cdef int* group_of       # key i -> its group
    cdef int* group_slot     # group -> slot
    cdef int* group_size     # group -> how many keys
    cdef Py_ssize_t keys, groups

    def __dealloc__(self):
        free(self.memory)

    cdef int fill(self, tuple args, Py_ssize_t count) except -1:
        cdef Py_ssize_t keys = count - 1, capacity = 4, i, j, g, groups = 0
        while capacity < 2 * keys:
            capacity *= 2
        self.memory = <int*>malloc((3 * keys + 2 * capacity) * sizeof(int))
        if self.memory == NULL:
            raise MemoryError()
        self.keys = keys
        self.group_of = self.memory
        self.group_slot = self.memory + keys
        self.group_size = self.memory + 2 * keys
        cdef int* table_slot = self.memory + 3 * keys  # hash table: slot, or -1
        cdef int* table_group = table_slot + capacity
        cdef int slot
        for j in range(capacity):
            table_slot[j] = -1
        for i in range(keys):
            slot = _slot_of(args[i + 1])
            j = (slot * 40503) & (capacity - 1)
            while table_slot[j] != -1 and table_slot[j] != slot:
                j = (j + 1) & (capacity - 1)
            if table_slot[j] == -1:
                table_slot[j] = slot
                table_group[j] = groups
                self.group_slot[groups] = slot
                self.group_size[groups] = 0
                groups += 1
            g = table_group[j]
            self.group_of[i] = g
            self.group_size[g] += 1
        self.groups = groups
        return 0

    cdef list spots(self):
        # Each group's key positions in the command (1-based), in order.
        cdef list spots_of = [None] * self.groups
        cdef Py_ssize_t g, i
        for g in range(self.groups):
            spots_of[g] = []
        for i in range(self.keys):
            (<list>spots_of[self.group_of[i]]).append(i + 1)
        return spots_of


cdef inline tuple _part_command(tuple args, list spots, Py_ssize_t size, verb, single):
    if size == 1:
        return (single, args[<Py_ssize_t>spots[0]])
    return (verb, *[args[<Py_ssize_t>spot] for spot in spots])


cdef object _split_by_slot(command, tuple args, Py_ssize_t count, one_key_verb):
    cdef _SlotGroups groups = _SlotGroups()
    groups.fill(args, count)
    if groups.groups == 1:
        return [(groups.group_slot[0], command)], None
    verb = args[0]
    single = verb if one_key_verb is None else one_key_verb
    cdef list spots_of = groups.spots()
    cdef list parts = []
    cdef Py_ssize_t g
    for g in range(groups.groups):
        parts.append((groups.group_slot[g],
                      _part_command(args, <list>spots_of[g], groups.group_size[g], verb,
                                    single)))
    return parts, spots_of


def split_by_node(command, slots, one_key_verb=None):
    """``split_keys(command, key_slot, one_key_verb)`` then ``group_parts(slots, parts,
    None)`` in one pass: ``(per_node, spots)``, ``per_node`` as ``group_parts`` gives it
    and ``spots`` as ``split_keys`` does; ``(None, None)`` when every key has one slot
    (the command goes whole). A slot no node serves raises ``LookupError(slot)``."""
    cdef tuple args = command if type(command) is tuple else tuple(command)
    cdef Py_ssize_t count = len(args), g, slot
    if count < 3:
        return None, None
    cdef list slot_map = slots if type(slots) is list else list(slots)
    cdef Py_ssize_t size = len(slot_map)
    cdef _SlotGroups groups = _SlotGroups()
    groups.fill(args, count)
    if groups.groups == 1:
        return None, None
    verb = args[0]
    single = verb if one_key_verb is None else one_key_verb
    cdef list spots_of = groups.spots()
    cdef dict per_node = {}
    cdef list seen = []  # [node, numbers, commands, ...]: found by identity, not hash
    cdef Py_ssize_t k
    cdef tuple group
    for g in range(groups.groups):
        slot = groups.group_slot[g]
        if slot >= size:
            raise IndexError("list index out of range")
        node = slot_map[slot]
        if node is None:
            raise LookupError(slot)
        part = _part_command(args, <list>spots_of[g], groups.group_size[g], verb, single)
        for k in range(0, len(seen), 3):
            if seen[k] is node:
                (<list>seen[k + 1]).append(g)
                (<list>seen[k + 2]).append(part)
                break
        else:
            found = per_node.get(node)  # (an equal node object: one group still)
            if found is None:
                found = per_node[node] = ([g], [part])
            else:
                (<list>(<tuple>found)[0]).append(g)
                (<list>(<tuple>found)[1]).append(part)
            group = <tuple>found
            seen.extend((node, group[0], group[1]))
    return per_node, spots_of


@cython.boundscheck(True)
@cython.wraparound(True)
def merge_values(spots, count, replies):
    """The reply of an MGET of ``count`` keys split by ``split_keys``: each part's
    values put back at its keys' positions."""
    cdef list values = [None] * count
    cdef Py_ssize_t j
    for found, reply in zip(spots, replies):
        if type(found) is list and type(reply) is list:  # (no zip per part)
            for j in range(min(len(<list>found), len(<list>reply))):
                values[(<list>found)[j] - 1] = (<list>reply)[j]
        else:
            for spot, value in zip(found, reply):
                values[spot - 1] = value
    return values


def group_parts(slots, todo, asking):
    """``{node: ([part number, ...], [command, ...])}``: where each part still to run
    (``todo``: number -> (slot, command), or a list of them numbered in order) goes,
    in order, by the slot map ``slots``; a part redirected by ASK (``asking``: number
    -> node) goes to the named node after an ``ASKING`` (numbered None). A slot no
    node serves raises ``LookupError(slot)``."""
    cdef dict per_node = {}
    cdef list slot_map = slots if type(slots) is list else list(slots)
    cdef Py_ssize_t slot, size = len(slot_map)
    cdef tuple group
    for number, (place, command) in (todo.items() if type(todo) is dict else enumerate(todo)):
        target = asking.get(number) if asking else None
        if target is None:
            slot = place
            if slot < 0:
                slot += size
            if slot < 0 or slot >= size:
                raise IndexError("list index out of range")
            node = slot_map[slot]
            if node is None:
                raise LookupError(place)
            found = per_node.get(node)
            if found is None:
                per_node[node] = ([number], [command])
            else:
                group = <tuple>found
                (<list>group[0]).append(number)
                (<list>group[1]).append(command)
        else:
            found = per_node.get(target)
            if found is None:
                found = per_node[target] = ([], [])
            group = <tuple>found
            (<list>group[0]).extend((None, number))
            (<list>group[1]).extend((("ASKING",), command))
    return per_node


def take_replies(numbers, replies, list replies_of, dict todo):
    """Keep the replies of one node's pipeline (``numbers[i]``: the part the ``i``th
    reply answers, None for ASKING's): each reply that is not an error goes to
    ``replies_of[number]`` and its part leaves ``todo``; the error replies are
    returned as ``[(number, error), ...]`` for the plan to judge."""
    cdef list errors = []
    cdef list numbered = numbers if type(numbers) is list else list(numbers)
    cdef list answered = replies if type(replies) is list else list(replies)
    cdef Py_ssize_t i, index, count = min(len(numbered), len(answered))
    cdef Py_ssize_t size = len(replies_of)
    for i in range(count):
        number = numbered[i]
        if number is None:
            continue
        reply = answered[i]
        if isinstance(reply, Exception):
            errors.append((number, reply))
            continue
        index = number
        if index < 0:
            index += size
        if index < 0 or index >= size:
            raise IndexError("list assignment index out of range")
        replies_of[index] = reply
        del todo[number]
    return errors


@cython.boundscheck(True)
@cython.wraparound(True)
def place_values(list values, spots, indices, replies, decode=None, command=None):
    """Put each part's reply (``replies[i]`` answers part ``indices[i]``: an MGET's
    list, or a one-key part's GET reply) at its keys' positions (``spots``, as
    ``split_keys`` gives them) in ``values``; return the parts with no such reply (an
    error, or none), to run again. With ``decode``, a value is placed as
    ``decode(value, command[spot])`` and a missing key's None is not placed."""
    cdef list again = []
    cdef list reply_list, found
    cdef Py_ssize_t position = 0, j, count = len(replies)
    for index in indices:
        if position >= count:
            again.append(index)
            continue
        reply = replies[position]
        position += 1
        found = spots[index] if type(spots[index]) is list else list(spots[index])
        if type(reply) is not list:
            if len(found) == 1 and (reply is None or type(reply) is bytes):
                _place(values, <Py_ssize_t>found[0], reply, decode, command)  # (a GET's)
            else:
                again.append(index)
            continue
        reply_list = <list>reply
        for j in range(min(len(found), len(reply_list))):
            _place(values, <Py_ssize_t>found[j], reply_list[j], decode, command)
    return again


@cython.boundscheck(True)
@cython.wraparound(True)
cdef inline int _place(list values, Py_ssize_t spot, value, decode, command) except -1:
    if decode is None:
        values[spot - 1] = value
    elif value is not None:
        values[spot - 1] = decode(value, command[spot])
    return 0
