"""Reading and writing: the user's .h5ad files (``h5ad``), HDF5 and torch files, the peak
embedding store, the samplesheet, settings files, matrix conversion (``convert``), and the
fault-safe writes every step uses (``atomic``: all-new or all-old output folders; ``locks``)."""
