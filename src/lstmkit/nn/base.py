"""The base of every layer: it owns configuration, not parameters, and is equal and hashed by value."""

from __future__ import annotations


def freeze(value):
    """A config value as a hashable one: dicts as sorted (key, value) tuples, lists as tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


class Layer:
    """Base class: no parameters, shape unchanged.

    Layers are equal, and hash, by value: by `spec()`, their type and configuration. Two models
    with equal layers trace the same code, so jit shares its compiled programs between them. A
    layer's configuration is fixed when it is constructed; build a new layer to change it.
    """

    return_state = False  # True: apply returns [output, *states], which no next layer of a Sequential takes

    def spec(self):
        """(type name, frozen config): everything about this layer that the traced code reads."""
        return (type(self).__name__, freeze(self.get_config()))

    def __eq__(self, other):
        return type(other) is type(self) and other.spec() == self.spec()

    def __hash__(self):
        return hash(self.spec())

    def init(self, key, in_shape):
        return {}, in_shape

    def apply(self, params, x, mask, *, key=None):
        return x, mask

    def get_config(self):
        return {}
