"""The beacon chain, as far as a light client needs it.

``ssz`` -- Simple Serialize: types, strict decoding, hash_tree_root, Merkle branches.
``containers`` -- the light-client containers of each fork and preset, gindices, domains.
"""
