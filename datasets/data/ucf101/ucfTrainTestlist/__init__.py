"""The official UCF-101 split files, byte for byte (a package so the .txt files ship as data)."""
