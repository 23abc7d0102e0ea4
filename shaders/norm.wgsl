// placeholder: norm kernels (being written)
