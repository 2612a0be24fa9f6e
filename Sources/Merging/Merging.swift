// Merging module
