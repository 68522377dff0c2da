"""Time `build_index` on a synthetic ~300-file gem: cold build, then the cached (disk + memo) path.

Run: .venv/bin/python benchmarks/bench_api_index.py [FILES]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

_TEMPLATE = """# frozen_string_literal: true

module Synth
  module Part{i}
    class Thing{i} < Base
      include Enumerable
      attr_reader :a{i}, :b{i},
                  :c{i}
      attr_accessor :d{i}

      def initialize(name, size = 1, *rest, key:, opt: nil, **kw, &block)
        @name = name
      end

      def with_value{i}(value, append: false)
        @value = value
        self
      end

      def each(&)
        [].each(&)
      end

      alias values{i} each

      %w[x y z].each do |cap|
        define_method "#{{cap}}_{i}?" do
          true
        end
      end

      class << self
        def build(...) = new(...)

        private

        def hidden{i}; end
      end

      private

      def secret{i}(x) = x * 2
    end
  end
end
"""


def make_gem(root: Path, files: int) -> Path:
    gem = root / "synth-1.0.0"
    lib = gem / "lib" / "synth"
    lib.mkdir(parents=True)
    (gem / "lib" / "synth.rb").write_text("module Synth\n  class Base\n    def base; end\n  end\nend\n")
    for i in range(files - 1):
        (lib / f"part{i}.rb").write_text(_TEMPLATE.format(i=i))
    return gem


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        from shipbench.audit.ruby import gem_sources
        from shipbench.audit.ruby.api_index import build_index

        gem = make_gem(Path(tmp), files)
        start = time.perf_counter()
        index = build_index(gem)
        cold = time.perf_counter() - start
        gem_sources.index_cached(gem, "synth", "1.0.0")
        gem_sources._MEMO.clear()
        start = time.perf_counter()
        gem_sources.index_cached(gem, "synth", "1.0.0")
        disk = time.perf_counter() - start
        start = time.perf_counter()
        gem_sources.index_cached(gem, "synth", "1.0.0")
        memo = time.perf_counter() - start
        methods = sum(len(c.instance_methods) + len(c.singleton_methods) for c in index.classes.values())
        print(f"files={index.files} classes={len(index.classes)} methods={methods}")
        print(f"cold build: {cold:.3f}s  disk cache: {disk:.3f}s  in-process memo: {memo * 1000:.1f}ms")


if __name__ == "__main__":
    main()
