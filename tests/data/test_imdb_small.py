"""A small model trained on a small IMDB subset learns: held-out accuracy well above chance."""

from lstmkit.data.imdb import read_imdb
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import resolve


def test_small_model_learns_on_an_imdb_subset(imdb_labeled):
    imdb = read_imdb(imdb_labeled, splits=("train", "test"), seed=0)
    train, test = imdb["train"].subset(range(3000)), imdb["test"].subset(range(1000))
    config = resolve(
        "default",
        max_tokens=5000,
        sequence_length=200,
        embedding_dim=32,
        lstm_units=16,
        dense_units=16,
        epochs=2,
        batch_size=32,
        learning_rate=3e-3,
    )
    model = build_model(config, n_classes=2, steps_per_epoch=3000 // 32 + 1)
    model.vectorizer.adapt(train.texts)
    model.class_names = train.class_names
    model.fit(train.texts, train.labels, epochs=2, batch_size=32, seed=0, verbose=False)
    loss, accuracy = model.evaluate(test.texts, test.labels)
    print(f"held-out accuracy {accuracy:.3f}")
    assert accuracy > 0.7, accuracy
