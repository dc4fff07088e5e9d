"""The tracking model of SAM 2: SAM heads on memory-conditioned features, memory selection,
object pointers and the per-frame tracking step. Stateless functions over a ``SAM2Base``."""
