"""Where keys go, pure-Python implementation (twin of ``_slots_c.pyx``): Valkey
Cluster hash slots, and the per-key loops of splitting commands by place.

``key_slot(key)`` is CRC16-XMODEM of the key (or of its ``{hash tag}``: the part
between the first ``{`` and the next ``}``, when not empty) modulo 16384.
"""

__all__ = ["SLOTS", "group_parts", "key_slot", "merge_values", "place_values", "split_by_node",
           "split_keys", "take_replies"]

SLOTS = 16384


def _table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _table()


def key_slot(key) -> int:
    """The cluster slot of ``key`` (str or bytes)."""
    data = key.encode() if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc % SLOTS


# -- splitting commands by place (shards or slots), for the routers and the cluster plan


def split_keys(command, place_of, one_key_verb=None):
    """Split a command over many keys (MGET, DEL, ...) by the place ``place_of(key)``
    names: ``(parts, spots)``, ``parts`` the ``(place, command)`` pairs and ``spots``
    the positions in ``command`` of each part's keys; ``spots`` is None when every
    key has one place (the command goes whole). A part of one key is sent as
    ``one_key_verb`` when given (GET for MGET: a bare reply, no list)."""
    positions: dict = {}
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
    single = verb if one_key_verb is None else one_key_verb
    parts = []
    for place, found in positions.items():
        if len(found) == 1:
            parts.append((place, (single, command[found[0]])))
        else:
            parts.append((place, (verb, *[command[spot] for spot in found])))
    return parts, list(positions.values())


def merge_values(spots, count, replies):
    """The reply of an MGET of ``count`` keys split by ``split_keys``: each part's
    values put back at its keys' positions."""
    values = [None] * count
    for found, reply in zip(spots, replies):
        for spot, value in zip(found, reply):
            values[spot - 1] = value
    return values


def group_parts(slots, todo, asking):
    """``{node: ([part number, ...], [command, ...])}``: where each part still to run
    (``todo``: number -> (slot, command), or a list of them numbered in order) goes,
    in order, by the slot map ``slots``; a part redirected by ASK (``asking``: number
    -> node) goes to the named node after an ``ASKING`` (numbered None). A slot no
    node serves raises ``LookupError(slot)``."""
    per_node: dict = {}
    for number, (slot, command) in (todo.items() if type(todo) is dict else enumerate(todo)):
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


def split_by_node(command, slots, one_key_verb=None):
    """``split_keys(command, key_slot, one_key_verb)`` then ``group_parts(slots, parts,
    None)`` (the compiled twin does both in one pass): ``(per_node, spots)``,
    ``per_node`` as ``group_parts`` gives it and ``spots`` as ``split_keys`` does;
    ``(None, None)`` when every key has one slot (the command goes whole). A slot no
    node serves raises ``LookupError(slot)``."""
    if len(command) < 3:
        return None, None
    parts, spots = split_keys(command, key_slot, one_key_verb)
    if spots is None:
        return None, None
    return group_parts(slots, parts, None), spots


def take_replies(numbers, replies, replies_of, todo):
    """Keep the replies of one node's pipeline (``numbers[i]``: the part the ``i``th
    reply answers, None for ASKING's): each reply that is not an error goes to
    ``replies_of[number]`` and its part leaves ``todo``; the error replies are
    returned as ``[(number, error), ...]`` for the plan to judge."""
    errors = []
    for number, reply in zip(numbers, replies):
        if number is None:
            continue
        if isinstance(reply, Exception):
            errors.append((number, reply))
            continue
        replies_of[number] = reply
        del todo[number]
    return errors


def place_values(values, spots, indices, replies, decode=None, command=None):
    """Put each part's reply (``replies[i]`` answers part ``indices[i]``: an MGET's
    list, or a one-key part's GET reply) at its keys' positions (``spots``, as
    ``split_keys`` gives them) in ``values``; return the parts with no such reply (an
    error, or none), to run again. With ``decode``, a value is placed as
    ``decode(value, command[spot])`` and a missing key's None is not placed."""
    again = []
    for position, index in enumerate(indices):
        if position >= len(replies):
            again.append(index)
            continue
        reply = replies[position]
        if type(reply) is not list:
            if len(spots[index]) == 1 and (reply is None or type(reply) is bytes):
                reply = [reply]  # (a GET's)
            else:
                again.append(index)
                continue
        for spot, value in zip(spots[index], reply):
            if decode is None:
                values[spot - 1] = value
            elif value is not None:
                values[spot - 1] = decode(value, command[spot])
    return again
