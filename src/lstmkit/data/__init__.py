"""Text in: the vectorizer, datasets and splits, IMDB, the user's files, unlabeled sources, batches."""
