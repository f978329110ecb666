"""What a class learns from the network's other builds (cnndsl.backends.torch_classes.together): the same groups
there, the groups of its block that hold its code only there (another scale), and the name the class has there."""

from __future__ import annotations


def observed_instances(compact, template) -> list:
    """The template's instances, and the same groups in the builds of `compact.evidence` where their code has
    the same numbers for the same things (a number there that differs makes an argument; a name must match
    it there too: a branch's width `c` and its `classes`, both 80 by default, part at other class counts)."""
    observed = list(template.instances)
    for other in compact.evidence:
        for instance in template.instances:
            seen = other.instances.get(instance.path)
            if (
                seen is not None
                and seen.code.hints == instance.code.hints
                and seen.code.key() == instance.code.key()
                and len(seen.numbers) == len(instance.numbers)
            ):
                observed.append(seen)
        observed += _moved(compact, other, template)
    return observed


def name_there(compact, template) -> str:
    """The name the same class has in a build of `compact.evidence` where it is free here: YOLO11's Dense of C3k
    blocks is Dense3 at n (its Dense of bottlenecks Dense2) and stays so at m, which has no Dense of bottlenecks."""
    key = None
    for other in compact.evidence:
        for theirs in other.templates.values():
            if (
                theirs.name
                and theirs.base == template.base
                and theirs.name not in compact.classes
                and theirs.key() == (key := key or template.key())
            ):
                compact.classes.used.add(theirs.name)
                return theirs.name
    return ""


def _moved(compact, other, template) -> list:
    """The instances of `other` (a build at another scale) of the template's block, with the template's code, at
    groups whose code here is another (YOLO11's C3k2 holds C3k blocks at m where it holds bottlenecks at n): the
    numbers the class's code takes at that scale."""
    first = template.instances[0]
    call = compact.groups.info[first.path].call
    if call is None:
        return []
    paths = {instance.path for instance in template.instances}
    moved = []
    for path, seen in other.instances.items():
        own = compact.instances.get(path)
        there = other.groups.info[path].call
        if (
            path in paths
            or own is None
            or there is None
            or there.block != call.block
            or own.code.key() == seen.code.key()
            or seen.code.key() != first.code.key()
            or seen.code.hints != first.code.hints
            or len(seen.numbers) != len(first.numbers)
        ):
            continue
        moved.append(seen)
    return moved
