"""`pooldoctor watch`: a live view of pools, server backends and the leading cause."""
