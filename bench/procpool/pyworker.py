"""Python worker of the process-pool benchmarks (conq SDK)."""
import conq


@conq.task(raw=True)
def noop(data):
    return None


@conq.task(raw=True)
def echo(data):
    return data  # a memoryview for large arguments: sent back without a copy


if __name__ == "__main__":
    conq.run()
