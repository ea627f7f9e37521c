"""The arena: blind pairwise human preference between two anonymous images, rated by Bradley-Terry.

Modules, in the order data flows through them:

- `importer`    reads a generation set (images + prompts.jsonl) and writes it to the store.
- `storage`     the SQLAlchemy tables (SQLite by default, PostgreSQL by URL).
- `service`     issues battles and records votes behind the online guards (voter tokens, rate limit,
                daily cap, one vote per issued battle, bans); `errors.ArenaError` carries the 4xx status.
- `app`         the FastAPI app: `pages` (arena, images, vote API, leaderboard), `admin` (import, export,
                bans behind a bearer token), `web` (per-request transaction, voter cookie), `settings`.
- `votes`       the vote record and its JSON-lines format (what `export` writes and `ratings` reads).
- `guards`      the offline guards applied before rating: per-voter outlier test, prompt down-sampling.
- `ratings`     Bradley-Terry maximum likelihood on the Elo scale with bootstrap intervals.
- `leaderboard` guards + ratings for every board and category; `plot` draws it as a PNG.
"""
