"""Commands run as `python -m tools.<name>`: demo and results-recipe data,
dated rasters into the on-disk layout, looks at a pipeline and at samples,
learning curves, the import of an original checkpoint, and how well the
models fill the user's own scene.

Importing the package loads no TensorFlow, so the dataset maker
(`python -m tools.synthetic`) runs without it.
"""
