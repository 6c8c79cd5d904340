"""Technical vocabulary: words of programming and operations that English word lists lack or rank as
misspellings (``pytest``, ``kubectl``, ``rebase``, ``struct``, ``lodash``).

They join the lexicon as words (so the gate does not take them for typos), the context check never
judges them, and the built-in cleaner never rewrites them (it may still restore one from a typo:
``pytets`` → ``pytest``). Written for this project: names of widely used languages, tools,
packages and services, and the identifiers and jargon developers write in prose.
"""

from __future__ import annotations

TECHNICAL_ZIPF = 3.0
"""The frequency the lexicon gives these words (as common as ``compiler``)."""

_WORDS = """
python pythonic cpython pypy jython ipython jupyter notebook conda anaconda miniconda pip pipx pipenv poetry venv virtualenv
pyenv pytest unittest doctest tox nox mypy pyright pylint flake ruff black isort pydantic fastapi flask django uvicorn
gunicorn asyncio aiohttp httpx requests numpy scipy pandas polars matplotlib seaborn plotly sklearn scikit pytorch torch
tensorflow keras jax huggingface transformers tokenizer tokenizers onnx cuda cudnn triton vllm llama mistral langchain
javascript typescript ecmascript nodejs node deno bun npm npx pnpm yarn webpack vite rollup esbuild babel eslint prettier
jest mocha vitest playwright puppeteer cypress react redux nextjs vue vuex nuxt svelte angular jquery lodash underscore
axios express koa nestjs graphql apollo tailwind bootstrap sass scss postcss jsx tsx json yaml toml csv xml html css dom
java kotlin scala groovy gradle maven jvm jdk jre javac spring springboot hibernate junit lombok
rust rustc cargo rustup clippy crate crates tokio serde golang gofmt goroutine goroutines
csharp dotnet nuget xamarin blazor linq cpp clang gcc llvm cmake makefile msvc gdb lldb valgrind
ruby rails rubygems bundler rake rspec php laravel composer symfony perl lua haskell ghc cabal ocaml elixir erlang
clojure lisp scheme racket fortran cobol matlab julia swift swiftui xcode cocoa objc kotlinx dart flutter zig nim
bash zsh fish shell sudo chmod chown grep egrep sed awk xargs curl wget ssh scp rsync tmux vim neovim emacs nano cron crontab
systemd systemctl journalctl nginx apache haproxy traefik envoy caddy linux ubuntu debian fedora centos alpine archlinux
macos homebrew brew wsl powershell cmd git github gitlab bitbucket rebase rebasing rebased gitignore
docker dockerfile dockerized podman kubernetes kubectl minikube helm kustomize istio terraform ansible pulumi vagrant
aws gcp azure lambda ec2 s3 cloudfront heroku netlify vercel firebase supabase
postgres postgresql psql mysql sqlite mariadb mongodb mongo redis memcached cassandra elasticsearch kafka rabbitmq
celery airflow spark hadoop hive presto snowflake bigquery dbt duckdb
sql nosql orm crud api apis rest restful grpc protobuf websocket websockets oauth jwt cors csrf ssl tls https dns cdn
localhost hostname subnet ipv4 ipv6 tcp udp http proxy
struct structs enum enums const constexpr typedef typeof sizeof malloc calloc realloc nullptr vtable vtables
namespace namespaces init args kwargs argv argc stdin stdout stderr stdlib stdio env dotenv config configs
async await sync goroutine callback callbacks middleware decorator decorators iterator iterators generator generators
boolean booleans bool int ints float floats str dict dicts tuple tuples len enumerate lambda lambdas closure closures
mutex mutexes semaphore semaphores deadlock deadlocks refactor refactoring refactored linter linters linting
debugger debuggers repo repos monorepo codebase backend frontend fullstack devops runtime runtimes webhook webhooks
regex regexes subprocess subprocesses stacktrace traceback tracebacks unicode utf ascii hashmap hashmaps hashtable
subscriptable iterable iterables hashable awaitable serializable serialize serialized deserialize deserialized
nullable mutable immutable instantiate instantiated polymorphism memoize memoization params param
metadata dataset datasets dataframe dataframes ndarray
localstorage cookie cookies
""".split()

TECHNICAL_WORDS = frozenset(_WORDS)
"""The vocabulary, lower case."""

