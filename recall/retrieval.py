"""Top-k nearest reference questions per target question, for dedup candidates.

TF-IDF over character n-grams (word-boundary aware) by default: cheap, needs no model, and
robust to inflection and small rewordings. With an embedding model directory configured,
sentence-transformers embeddings instead (the paper's dense retrieval); any Hugging Face
encoder directory works, mean-pooled when it has no sentence-transformers config.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

CHUNK = 512  # target rows per similarity block: bounds memory at CHUNK x n_references floats


def top_k(similarity_rows, n_targets: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best references per target, best first.

    `similarity_rows(start, stop)` returns the dense [stop-start, n_refs] similarity block.
    """
    indices, scores = [], []
    for start in tqdm(range(0, n_targets, CHUNK), desc="retrieval", unit="block",
                      disable=n_targets <= CHUNK):
        sim = np.asarray(similarity_rows(start, min(start + CHUNK, n_targets)), dtype=np.float32)
        kk = min(k, sim.shape[1])
        part = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        part_scores = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        indices.append(np.take_along_axis(part, order, axis=1))
        scores.append(np.take_along_axis(part_scores, order, axis=1))
    if not indices:
        return np.zeros((0, k), dtype=int), np.zeros((0, k), dtype=np.float32)
    return np.vstack(indices), np.vstack(scores)


def tfidf_top_k(targets: Sequence[str], references: Sequence[str], k: int,
                ngram_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(ngram_range),
                                 lowercase=True, sublinear_tf=True, dtype=np.float32)
    vectorizer.fit(list(references) + list(targets))
    refs_t = vectorizer.transform(references).T.tocsr()
    tgts = vectorizer.transform(targets)
    return top_k(lambda a, b: (tgts[a:b] @ refs_t).toarray(), len(targets), k)


def dense_top_k(targets: Sequence[str], references: Sequence[str], k: int,
                model_dir: str) -> tuple[np.ndarray, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    kw = dict(normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    refs = model.encode(list(references), show_progress_bar=len(references) > 1000, **kw)
    tgts = model.encode(list(targets), show_progress_bar=len(targets) > 1000, **kw)
    return top_k(lambda a, b: tgts[a:b] @ refs.T, len(targets), k)
