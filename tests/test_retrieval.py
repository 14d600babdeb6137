"""Top-k retrieval: TF-IDF char n-grams find rewordings; the dense path runs a local encoder."""

import numpy as np

from recall.retrieval import dense_top_k, tfidf_top_k, top_k


def test_top_k_orders_best_first_across_blocks(monkeypatch):
    import recall.retrieval as retrieval

    monkeypatch.setattr(retrieval, "CHUNK", 2)
    sim = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3], [0.0, 0.0, 1.0]])
    idx, scores = top_k(lambda a, b: sim[a:b], 3, 2)
    assert idx.tolist() == [[1, 2], [0, 2], [2, 0]]
    assert np.allclose(scores, [[0.9, 0.5], [0.7, 0.3], [1.0, 0.0]])


def test_tfidf_finds_the_reworded_question_first():
    refs = ["who wrote the song shallow for a star is born", "when did the first harry potter "
            "movie come out", "what is the capital of tasmania"]
    idx, _ = tfidf_top_k(["who wrote shallow from a star is born",
                          "capital city of Tasmania?"], refs, 2, (3, 5))
    assert idx[:, 0].tolist() == [0, 2]


def test_dense_retrieval_with_a_local_encoder(tiny_model):
    model_dir, world, _ = tiny_model
    questions = [it.question for it in world.items[:20]]
    idx, scores = dense_top_k(questions[:5], questions, 3, str(model_dir))
    assert idx.shape == (5, 3)
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4]  # each question is nearest to itself
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
