// placeholder: attention kernels (being written)
