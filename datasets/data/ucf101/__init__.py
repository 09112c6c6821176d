"""UCF-101: the official ucfTrainTestlist files (CRLF line ends kept) and the Snap Video prompts."""
