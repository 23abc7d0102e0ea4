// placeholder: matmul kernels (being written)
