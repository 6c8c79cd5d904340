.PHONY: demo test test-fast bench
demo:        ## run the offline demo gateway on 127.0.0.1:8000
	bash scripts/demo.sh $(ARGS)
test:        ## run the whole test suite (what CI runs)
	bash scripts/test.sh $(ARGS)
test-fast:   ## unit + integration tests, no vLLM / Ansible / soak
	bash scripts/test.sh -m "not vllm and not ansible and not slow" $(ARGS)
bench:       ## print the benchmark table
	.venv/bin/python bench/run.py $(ARGS)
