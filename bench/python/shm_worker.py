"""Large-data conq worker for BenchmarkEcho64MiB/python-*: copy writes a
new same-size result into conq.result_buffer (one copy, no pipe)."""
import conq


@conq.task(raw=True)
def echo(data):
    return data


@conq.task(raw=True)
def copy(data):
    out = conq.result_buffer(len(data))
    out[:] = data
    return out


if __name__ == "__main__":
    conq.run()
