from awq_ext.nn.int4_linear import Int4Linear

__all__ = ["Int4Linear"]
