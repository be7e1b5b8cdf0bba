"""Peak embedding: Nucleotide Transformer (no remote code) and a k-mer baseline.

Submodules are imported lazily; ``kmer`` and ``tokenizer`` need only numpy.
"""
