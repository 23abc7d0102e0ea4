// placeholder: rope kernels (being written)
