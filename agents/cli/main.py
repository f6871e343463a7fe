"""The ``streamdq`` command line.

User mistakes (bad spec, missing file, unreachable broker) print a clear
message and exit non-zero, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from agents.cli.errors import friendly
from monitor.errors import ConfigError, ProfileError, StreamdqError

if TYPE_CHECKING:  # imported lazily at run time: `streamdq --help` stays quick
    from agents.kafka.security import KafkaSecurity

__all__ = ["main"]




@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamdq")
def cli() -> None:
    """streamdq: streaming data-quality and drift monitoring on Kafka."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@friendly
def validate(spec: str) -> None:
    """Check a monitor spec; print each problem with the path of the bad key.

    Warns (on stderr; the exit code stays 0) about streams whose drift cannot run: features that
    would be drift-tested but no reference profile."""
    from agents.cli.speccheck import spec_warnings
    from monitor.spec import load_spec

    s = load_spec(spec)
    click.secho(f"{spec}: valid (monitor {s.name!r}, {len(s.streams)} stream(s), "
                f"{sum(len(x.features) for x in s.streams)} feature(s))", fg="green")
    for stream in s.streams:
        if stream.reference and not Path(stream.reference).is_file():
            click.secho(f"  note: stream {stream.name!r}: reference profile {stream.reference} does not "
                        "exist yet (streamdq reference build)", fg="yellow")
    for warning in spec_warnings(s):
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@cli.group()
def reference() -> None:
    """Reference profiles (the training-data statistics drift is measured against)."""


@reference.command("build")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help="CSV, JSONL or Parquet file.")
@click.option("--topic", default=None, help="Read the records from this Kafka topic instead of a file.")
@click.option("--from", "from_", default=None, help="With --topic: first offset (per partition) or ISO-8601 time.")
@click.option("--to", default=None, help="With --topic: end offset (exclusive) or ISO-8601 time (default: now).")
@click.option("--bootstrap", default=None, help="With --topic: Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Profile JSON to write.")
@click.option("--stream", default=None, help="Stream to profile (default: the spec's only features stream).")
@click.option("--sample-size", default=200_000, show_default=True,
              help="Values kept per numeric feature for quantiles and bin edges.")
@click.option("--strict", is_flag=True, help="Exit 1 (and write no profile) when a feature's reference data "
              "breaks the spec: values outside its range, categories or pattern, of the wrong type, or "
              "mostly missing.")
@click.option("--json", "as_json", is_flag=True, help="Progress and the result as JSON lines on stdout (for scripts); "
              "the human summary goes to stderr.")
@friendly
def reference_build(spec: str, input_path: str | None, topic: str | None, from_: str | None, to: str | None,
                    bootstrap: str | None, out: str, stream: str | None, sample_size: int, strict: bool,
                    as_json: bool) -> None:
    """Build a versioned reference profile from clean records (a file or a topic range).

    Records are decoded and checked as the worker does: what it would dead-letter (no id, a bad event
    time, a line that is not JSON, ...) is left out and counted. A summary follows: records read,
    profiled and excluded (per reason), and each feature whose reference data breaks the spec."""
    from agents.cli.progress import RecordProgress, count_records
    from monitor.reference import ReferenceAudit, build_profile, build_profile_from_file
    from monitor.spec import load_spec

    s = load_spec(spec)
    st = _pick_stream(s, stream)
    if (input_path is None) == (topic is None):
        raise ConfigError("give exactly one of --input FILE or --topic TOPIC")
    audit = ReferenceAudit(st)
    say = _sayer(as_json)
    total = count_records(input_path) if input_path is not None else None
    try:
        with RecordProgress("profiling", total=total, json_lines=as_json) as progress:
            if input_path is not None:
                profile = build_profile_from_file(st, input_path, sample_size=sample_size, progress=progress,
                                                  audit=audit)
            else:
                from agents.kafka.source import parse_position, topic_records

                boot, security = _kafka(bootstrap)
                start, end = parse_position(from_), parse_position(to)
                source = {"kind": "kafka", "topic": topic, "from": from_, "to": to}
                profile = build_profile(
                    st, lambda: audit.check(topic_records(boot, st, topic, start=start,  # type: ignore[arg-type]
                                                          end=end, security=security)),
                    source=source, sample_size=sample_size, progress=progress, audit=audit)
            progress.finish(audit.read)
    except ProfileError:
        if audit.features:  # the build failed after reading everything: show what it found first
            for line in audit.summary_lines():
                say(line)
        raise
    for line in audit.summary_lines():
        say(line)
    if strict and audit.findings:
        click.secho(f"error: --strict: the reference data of {len(audit.findings)} feature(s) breaks the spec "
                    f"({', '.join(f.name for f in audit.findings)}); {out} not written", fg="red", err=True)
        sys.exit(1)
    profile.save(out)
    say(f"wrote {out}: stream {st.name!r}, {profile.rows:,} records, "
        f"{len(profile.features)} features, profile_version {profile.profile_version}", fg="green")
    metrics = None
    if st.model is not None:
        from monitor.performance import reference_metrics

        metrics = reference_metrics(profile.model)
        if metrics is None:
            say(f"note: no row carried both a prediction and a {st.model.label_field!r} label, so the profile "
                        "has no reference performance (performance drops and CBPE calibration need one)", fg="yellow")
        else:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                              if k in ("accuracy", "roc_auc", "f1", "macro_f1", "mae", "rmse") and v is not None)
            examples = (profile.model or {}).get("examples", 0)
            say(f"model reference performance over {examples:,} labelled rows: {shown}")
    if as_json:
        _json_line({"event": "result", "command": "reference build", "out": out, "stream": st.name,
                    "records": profile.rows, "read": audit.read, "excluded": audit.excluded,
                    "features": len(profile.features), "profile_version": profile.profile_version,
                    "findings": [f.name for f in audit.findings], "model_performance": metrics})


def _sayer(as_json: bool) -> Any:
    """``click.secho`` for a command's human lines: to stdout, or to stderr when stdout carries JSON lines."""
    def say(text: str, **style: Any) -> None:
        click.secho(text, err=as_json, **style)
    return say


def _json_line(doc: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
    sys.stdout.flush()


@reference.command("merge")
@click.argument("profiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Merged profile JSON to write.")
@friendly
def reference_merge(profiles: tuple[str, ...], out: str) -> None:
    """Merge several profiles of one stream (e.g. daily profiles into a weekly one)."""
    from monitor.reference import ReferenceProfile

    if len(profiles) < 2:
        raise ConfigError("give at least two profiles to merge")
    merged = ReferenceProfile.load(profiles[0])
    for path in profiles[1:]:
        merged = merged.merge(ReferenceProfile.load(path))
    merged.save(out)
    click.secho(f"wrote {out}: {merged.rows:,} records from {len(profiles)} profiles, "
                f"profile_version {merged.profile_version}", fg="green")


def _kafka(bootstrap: str | None) -> tuple[str, KafkaSecurity]:
    """The bootstrap servers and security settings of a command that reads Kafka."""
    from agents.settings import Settings

    settings = Settings.from_env(bootstrap=bootstrap)
    if not settings.bootstrap:
        raise ConfigError("no Kafka cluster: set KAFKA_BOOTSTRAP or pass --bootstrap")
    return settings.bootstrap, settings.kafka


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help="CSV, JSONL or Parquet file.")
@click.option("--topic", default=None, help="Replay this Kafka topic range instead of a file.")
@click.option("--from", "from_", default=None, help="With --topic: first offset (per partition) or ISO-8601 time.")
@click.option("--to", default=None, help="With --topic: end offset (exclusive) or ISO-8601 time (default: now).")
@click.option("--bootstrap", default=None, help="With --topic: Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for alerts.jsonl, windows.jsonl.")
@click.option("--stream", default=None, help="Stream to replay (default: the spec's only features stream).")
@click.option("--labels", "labels_input", type=click.Path(dir_okay=False), default=None,
              help="With a predictions --stream: the labels file (or, with --topic, the labels topic), replayed "
              "together with the predictions through the model monitor.")
@click.option("--close-partial", is_flag=True, default=False,
              help="Let the windows still open at the end of the input raise alerts (default: they are written to "
              "windows.jsonl, marked partial, without alerts, as a worker would not have closed them yet).")
@click.option("--json", "as_json", is_flag=True, help="Progress and the summary as JSON lines on stdout (for scripts).")
@friendly
def replay(spec: str, input_path: str | None, topic: str | None, from_: str | None, to: str | None,
           bootstrap: str | None, out: str, stream: str | None, labels_input: str | None,
           close_partial: bool, as_json: bool) -> None:
    """Run the engine offline over recorded data (event time drives the windows); with --labels, a model's
    predictions and labels together (joins, performance windows, model alerts)."""
    from rich.table import Table

    from agents.cli.progress import RecordProgress, count_records, out_console
    from monitor.reference import load_references, read_records
    from monitor.replay import replay as run_replay
    from monitor.spec import load_spec

    s = load_spec(spec)
    st = _pick_stream(s, stream)
    if (input_path is None) == (topic is None):
        raise ConfigError("give exactly one of --input FILE or --topic TOPIC")
    if labels_input is not None and st.model is None:
        raise ConfigError(f"--labels goes with a kind: predictions --stream (stream {st.name!r} is {st.kind})")
    if labels_input is None and st.model is not None:
        raise ConfigError(f"stream {st.name!r} holds the predictions of model {st.model.name!r}: replay it together "
                          f"with its labels stream {st.model.labels!r} (--labels FILE, or --labels TOPIC with --topic)")
    # Only the replayed streams' references: another stream's missing profile does not matter here.
    references = load_references(s, {st.name, *([st.model.labels] if st.model is not None else [])})
    if input_path is not None:
        if not Path(input_path).is_file():
            raise ConfigError(f"input {input_path} does not exist")
        records: Any = read_records(input_path, st)
    partitions: dict[str, int] | None = None
    if input_path is None:
        from agents.kafka.source import parse_position, partitioned_records, topic_partitions

        boot, security = _kafka(bootstrap)
        # Each partition's records update that partition's windows, the partitions read side by side: the
        # windows hold what a worker's would (a count window takes its share of every partition).
        records = partitioned_records(boot, st, topic, start=parse_position(from_),  # type: ignore[arg-type]
                                      end=parse_position(to), security=security)
        partitions = {st.name: topic_partitions(boot, topic, security=security)}  # type: ignore[arg-type]
    label_records: Any = None
    if labels_input is not None and st.model is not None:
        lst = s.stream(st.model.labels)
        if input_path is not None:
            if not Path(labels_input).is_file():
                raise ConfigError(f"labels input {labels_input} does not exist")
            label_records = read_records(labels_input, lst)
        else:
            from agents.kafka.source import parse_position, partitioned_records, topic_partitions

            boot, security = _kafka(bootstrap)
            label_records = partitioned_records(boot, lst, labels_input, start=parse_position(from_),
                                                end=parse_position(to), security=security)
            partitions = {**(partitions or {}), lst.name: topic_partitions(boot, labels_input, security=security)}
    total = None
    if input_path is not None:
        counts = [count_records(input_path), *([count_records(labels_input)] if labels_input is not None else [])]
        total = None if None in counts else sum(c for c in counts if c is not None)
    with RecordProgress("replaying", total=total, json_lines=as_json) as progress:
        inputs = {st.name: records}
        if label_records is not None and st.model is not None:
            inputs[st.model.labels] = label_records
        summary = run_replay(s, inputs, out, references=references, progress=progress,
                             close_partial=close_partial, partitions=partitions)
        progress.finish(summary.records + sum(summary.rejected.values()))
    folder = Path(out)  # "bt2/" must not print as "bt2//alerts.jsonl"
    written = [folder / "alerts.jsonl", folder / "windows.jsonl", folder / "deadletters.jsonl"]
    if as_json:
        _json_line({"event": "result", "command": "replay", **summary.to_dict(), "out": [str(p) for p in written]})
        return
    if label_records is not None and st.model is not None:
        title = (f"replay of {input_path or topic} with labels {labels_input}: "
                 f"{summary.by_stream[st.name]:,} predictions, {summary.by_stream[st.model.labels]:,} labels, "
                 f"{summary.windows} windows")
    else:
        title = f"replay of {input_path or topic}: {summary.records:,} records, {summary.windows} windows"
    table = Table(title=title)
    for col in ("feature", "check", "severity", "status", "events"):
        table.add_column(col)
    for (feature, check, severity, alert_status), n in sorted(summary.alerts.items(), key=lambda kv: str(kv[0])):
        table.add_row(feature or "(record)", check, severity, alert_status, str(n))  # model alerts: name:version
    out_console().print(table)
    if summary.rejected:
        click.echo("rejected records: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items())))
    click.secho("wrote " + ", ".join(map(str, written)), fg="green")


def _pick_stream(spec: Any, name: str | None) -> Any:
    if name is not None:
        try:
            return spec.stream(name)
        except KeyError:
            raise ConfigError(f"no stream named {name!r} in the spec "
                              f"(streams: {', '.join(x.name for x in spec.streams)})") from None
    stream = spec.default_stream()
    if stream is not None:
        return stream
    raise ConfigError("the spec has several streams; choose one with --stream "
                      f"(streams: {', '.join(x.name for x in spec.streams)})")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP).")
@click.option("--web-port", type=int, default=None,
              help="Port of /metrics and /health (default: $STREAMDQ_WEB_PORT or 6066).")
@click.option("--loglevel", default=None, help="debug, info, warning (default: $STREAMDQ_LOG_LEVEL or info).")
@friendly
def worker(spec: str, bootstrap: str | None, web_port: int | None, loglevel: str | None) -> None:
    """Run a monitoring worker (a Faust worker) for SPEC until Ctrl-C/SIGTERM."""
    from agents.settings import Settings
    from agents.worker.run import run_worker

    run_worker(spec, Settings.from_env(bootstrap=bootstrap, web_port=web_port, log_level=loglevel))


@cli.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for trying streamdq out."""


@kafka.command("fetch")
@friendly
def kafka_fetch() -> None:
    """Download the Kafka broker jars with Maven (done automatically by start)."""
    from agents.cli.localkafka import fetch_jars

    click.echo(f"jars: {fetch_jars(log=click.echo)}")


@kafka.command("start")
@friendly
def kafka_start() -> None:
    """Start a broker in the background on a free loopback port."""
    from agents.cli.localkafka import LocalKafka, cache_dir

    if os.environ.get("KAFKA_BOOTSTRAP"):
        click.echo(f"KAFKA_BOOTSTRAP is set ({os.environ['KAFKA_BOOTSTRAP']}); not starting a local broker.")
        return
    state = LocalKafka.read_state()
    if state is not None and _broker_up(str(state["bootstrap"])):
        click.echo(f"already running: export KAFKA_BOOTSTRAP={state['bootstrap']}")
        return
    LocalKafka.stop_background()
    k = LocalKafka(log=click.echo, tie_to_parent=False, work_dir=cache_dir() / "kafka-run" / "broker")
    k._own_dir = True  # the work dir is removed by `kafka stop`
    k.start()
    k.write_state()
    click.echo(f"export KAFKA_BOOTSTRAP={k.bootstrap}")


@kafka.command("stop")
@friendly
def kafka_stop() -> None:
    """Stop the background broker."""
    from agents.cli.localkafka import LocalKafka

    click.echo("stopped" if LocalKafka.stop_background() else "no local broker was running")


@kafka.command("status")
@friendly
def kafka_status() -> None:
    """Show whether the background broker is up (exit 1 if not)."""
    from agents.cli.localkafka import LocalKafka

    state = LocalKafka.read_state()
    if state is None:
        click.echo("no local broker was started (streamdq kafka start)")
        sys.exit(1)
    up = _broker_up(str(state["bootstrap"]))
    click.echo(f"{'up' if up else 'DOWN'}: Kafka {state['version']} at {state['bootstrap']} (pid {state['pid']})")
    sys.exit(0 if up else 1)


def _broker_up(bootstrap: str) -> bool:
    from agents.cli.localkafka import wait_for_broker

    try:
        wait_for_broker(bootstrap, timeout=3)
        return True
    except StreamdqError:
        return False


@cli.command("topics")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP).")
@friendly
def topics(spec: str, bootstrap: str | None) -> None:
    """Create the spec's topics with their configured partition counts."""
    from agents.kafka.topics import ensure_topics, spec_topics
    from agents.settings import Settings
    from monitor.spec import load_spec

    settings = Settings.from_env(bootstrap=bootstrap)
    if not settings.bootstrap:
        raise ConfigError("no Kafka cluster: set KAFKA_BOOTSTRAP or pass --bootstrap")
    wanted = spec_topics(load_spec(spec))
    ensure_topics(settings.bootstrap, wanted, log=click.echo, security=settings.kafka)
    click.echo(f"{len(wanted)} topic(s) present: {', '.join(wanted)}")


@cli.command("schema")
def schema() -> None:
    """Print the JSON Schema of the monitor spec."""
    from monitor.spec import MonitorSpec

    click.echo(orjson.dumps(MonitorSpec.model_json_schema(), option=orjson.OPT_INDENT_2).decode())


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: standard output).")
@click.option("--job", default="streamdq", show_default=True, help="Prometheus scrape job of the workers.")
@click.option("--for", "hold", default=None, metavar="DURATION",
              help="Replace every alert's `for:` (e.g. 0s for a demo or a test; default: each rule's own).")
@friendly
def rules(spec: str, output: str | None, job: str, hold: str | None) -> None:
    """Write Prometheus recording and alerting rules for a monitor spec (its streams, features and levels)."""
    from agents.ops.rules import render_rules
    from monitor.spec import load_spec

    _write(render_rules(load_spec(spec), source=spec, job=job, hold=hold), output)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: standard output).")
@friendly
def dashboard(spec: str, output: str | None) -> None:
    """Write the Grafana dashboard JSON for a monitor spec (provision it from deploy/grafana/)."""
    from agents.ops.dashboard import render_dashboard
    from monitor.spec import load_spec

    _write(render_dashboard(load_spec(spec)), output)


def _write(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.secho(f"wrote {output}", fg="green", err=True)


@cli.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Monitor spec (default: deploy/monitor.yaml).")
@click.option("--rate", type=float, default=2000.0, show_default=True, help="Records per second sent by the producer.")
@click.option("--web-port", type=int, default=None, help="Worker metrics port (default: a free port).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--producer-only", is_flag=True, help="Only the producer (and the alert printing), against the cluster "
              "KAFKA_BOOTSTRAP names, for workers run elsewhere (docker-compose.yml).")
@click.option("--write-references", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Only write the demo's reference profiles into DIR (for workers run elsewhere), then stop.")
@friendly
def demo(duration: float | None, spec_path: str | None, rate: float, web_port: int | None, seed: int,
         producer_only: bool, write_references: str | None) -> None:
    """Run everything locally: Kafka, a worker, and a producer with injected drift and bad records."""
    from agents.cli.demo import run_demo

    sys.exit(run_demo(duration=duration, spec_path=spec_path, rate=rate, web_port=web_port, seed=seed,
                      producer_only=producer_only, write_references=write_references))


@cli.group()
def alerts() -> None:
    """Alert notifications: watch the alerts topic, test the subscriptions."""


def _attach_alert_commands() -> None:
    from agents.cli.alerts import send_test, tail

    alerts.add_command(tail)       # streamdq alerts tail
    alerts.add_command(send_test)  # streamdq alerts test SPEC


_attach_alert_commands()


def _attach_status_command() -> None:
    from agents.cli.status import status

    cli.add_command(status)  # streamdq status


_attach_status_command()


def _attach_report_command() -> None:
    from agents.cli.report import report

    cli.add_command(report)  # streamdq report DIR... (plotly is imported only when it runs)


_attach_report_command()


def main() -> None:
    cli(prog_name="streamdq")


if __name__ == "__main__":
    main()
