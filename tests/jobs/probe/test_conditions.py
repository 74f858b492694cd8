"""The condition language: every placeholder, operator and function, and its errors."""

from __future__ import annotations

import doctest
from datetime import timedelta

import pytest

import jobs.probe.conditions
import jobs.probe.placeholders
import jobs.probe.syntax
from jobs.probe.conditions import (
    ConditionError,
    Outcome,
    Verdict,
    default_conditions,
    evaluate,
    judge,
    outcome,
    parse_condition,
    parse_conditions,
)
from jobs.probe.facts import Facts
from jobs.probe.placeholders import duration_ms, format_duration

BODY = (
    '{"status": "UP", "data": [{"id": 1, "name": "john.doe"}, {"id": 2.0}], "count": 3,'
    ' "price": 24.99, "ok": true, "gone": null, "empty": "", "nested": {"a": {"b": [[5, 6]]}},'
    ' "errors": []}'
)
HTTP = Facts(
    response_time_ms=123.9,
    connected=True,
    status=200,
    body=BODY,
    certificate_expiration=timedelta(hours=47, minutes=59, seconds=3),
)
TCP = Facts(response_time_ms=4.0, connected=True)
REFUSED = Facts(connected=False, error_kind="refused", error="connection refused")
DNS = Facts(response_time_ms=2.0, connected=True, dns_rcode="NXDOMAIN", body="")
RECORDER = Facts(
    connected=True,
    app_status="started",
    msg_status="success",
    body='{"task_id": "task01", "payload": {"file_path": "/mnt/rec001.wav", "at_stopped": ""}}',
)


# (condition, facts, success, actual)
CASES = [
    # [STATUS]: numbers compare as numbers, with every operator.
    ("[STATUS] == 200", HTTP, True, "200"),
    ("[STATUS] == 200.0", HTTP, True, "200"),
    ("[STATUS] != 200", HTTP, False, "200"),
    ("[STATUS] < 500", Facts(status=503), False, "503"),
    ("[STATUS] < 500", HTTP, True, "200"),
    ("[STATUS] <= 200", HTTP, True, "200"),
    ("[STATUS] <= 199", HTTP, False, "200"),
    ("[STATUS] > 199", HTTP, True, "200"),
    ("[STATUS] > 200", HTTP, False, "200"),
    ("[STATUS] >= 200", HTTP, True, "200"),
    ("[STATUS] >= 201", HTTP, False, "200"),
    ("[status] == 200", HTTP, True, "200"),
    ("  [STATUS]==200  ", HTTP, True, "200"),
    ("[STATUS] == any(200, 429)", HTTP, True, "200"),
    ("[STATUS] == any(201, 429)", HTTP, False, "200"),
    ("[STATUS] != any(500, 503)", HTTP, True, "200"),
    ("[STATUS] == pat(2*)", HTTP, True, "200"),
    ("[STATUS] == pat(3*)", HTTP, False, "200"),
    ("[STATUS] != pat(5??)", HTTP, True, "200"),
    ("[STATUS] == [BODY].count", HTTP, False, "200"),
    ("[STATUS] > [BODY].count", HTTP, True, "200"),
    # A placeholder the check has no value for fails whatever the operator.
    ("[STATUS] < 500", TCP, False, "n/a"),
    ("[STATUS] != 200", TCP, False, "n/a"),
    ("[STATUS] == pat(*)", TCP, False, "n/a"),
    # [RESPONSE_TIME]: whole milliseconds (Gatus truncates), durations convert.
    ("[RESPONSE_TIME] == 123", HTTP, True, "123"),
    ("[RESPONSE_TIME] < 124", HTTP, True, "123"),
    ("[RESPONSE_TIME] < 1s", HTTP, True, "123"),
    ("[RESPONSE_TIME] > 100ms", HTTP, True, "123"),
    ("[RESPONSE_TIME] < 0.1s", HTTP, False, "123"),
    ("[RESPONSE_TIME] < 1000", REFUSED, False, "n/a"),
    # [CONNECTED]: true or false, any case on the right.
    ("[CONNECTED] == true", TCP, True, "true"),
    ("[CONNECTED] == True", TCP, True, "true"),
    ("[CONNECTED] == true", REFUSED, False, "false"),
    ("[CONNECTED] != true", REFUSED, True, "false"),
    ("[CONNECTED] == false", REFUSED, True, "false"),
    # [CERTIFICATE_EXPIRATION]: milliseconds, compared with durations; shown as a duration.
    ("[CERTIFICATE_EXPIRATION] > 72h", HTTP, False, "47h59m3s"),
    ("[CERTIFICATE_EXPIRATION] > 1d", HTTP, True, "47h59m3s"),
    ("[CERTIFICATE_EXPIRATION] > 2d", HTTP, False, "47h59m3s"),
    ("[CERTIFICATE_EXPIRATION] > 47h59m", HTTP, True, "47h59m3s"),
    ("[CERTIFICATE_EXPIRATION] > 1h30m", HTTP, True, "47h59m3s"),
    ("[CERTIFICATE_EXPIRATION] >= 172743000", HTTP, True, "47h59m3s"),
    ("[CERTIFICATE_EXPIRATION] > 172743000", HTTP, False, "47h59m3s"),
    (
        "[CERTIFICATE_EXPIRATION] > 0",
        Facts(certificate_expiration=-timedelta(hours=2)),
        False,
        "-2h",
    ),
    ("[CERTIFICATE_EXPIRATION] > 72h", TCP, False, "n/a"),
    # [DNS_RCODE], [APP_STATUS], [MSG_STATUS]: exact text.
    ("[DNS_RCODE] == NOERROR", DNS, False, "NXDOMAIN"),
    ("[DNS_RCODE] == any(NOERROR, NXDOMAIN)", DNS, True, "NXDOMAIN"),
    ("[DNS_RCODE] != SERVFAIL", DNS, True, "NXDOMAIN"),
    ("[DNS_RCODE] == NOERROR", HTTP, False, "n/a"),
    ("[APP_STATUS] == started", RECORDER, True, "started"),
    ("[APP_STATUS] == stopped", RECORDER, False, "started"),
    ("[MSG_STATUS] == success", RECORDER, True, "success"),
    ("[MSG_STATUS] == success", Facts(msg_status="error"), False, "error"),
    ("[MSG_STATUS] == success", TCP, False, "n/a"),
    # [BODY]: the whole body (trimmed), text or number.
    ("[BODY] == 1", Facts(body=" 1\n"), True, "1"),
    ("[BODY] == 1", Facts(body="2"), False, "2"),
    ("[BODY] < 5", Facts(body="4.5"), True, "4.5"),
    ("[BODY] < 5", Facts(body="four"), False, "four"),
    ("[BODY] > 1h", Facts(body="2h"), True, "2h"),
    ("[BODY] == pat(*ok*)", Facts(body="all ok here"), True, "all ok here"),
    ("[BODY] == pat(*ok*)", Facts(body="all bad"), False, "all bad"),
    ('[BODY] == pat(*"status": "UP"*)', HTTP, True, BODY[:100] + "…"),
    ("[BODY] == pat(ok?)", Facts(body="ok!"), True, "ok!"),
    ("[BODY] == pat([ab]c)", Facts(body="bc"), True, "bc"),
    ("[BODY] == pat(OK)", Facts(body="ok"), False, "ok"),
    ("[BODY] == hello world", Facts(body="hello world"), True, "hello world"),
    ("[BODY] == [1,2]", Facts(body="[1,2]"), True, "[1,2]"),
    ("[BODY] == ok", TCP, False, "n/a"),
    # [BODY].path: a path into the body as JSON.
    ("[BODY].status == UP", HTTP, True, "UP"),
    ("[BODY].status == up", HTTP, False, "UP"),
    ("[BODY].data[0].id == 1", HTTP, True, "1"),
    ("[BODY].data[1].id == 2", HTTP, True, "2"),
    ("[BODY].data[0].name == pat(john*)", HTTP, True, "john.doe"),
    ("[BODY].data[1].id == any(1, 2)", HTTP, True, "2"),
    ("[BODY].nested.a.b[0][1] == 6", HTTP, True, "6"),
    ("[BODY].nested.a.b[0] == [5,6]", HTTP, True, "[5,6]"),
    ('[BODY].nested.a == {"b":[[5,6]]}', HTTP, True, '{"b":[[5,6]]}'),
    ("[BODY].count == [BODY].data[1].id", HTTP, False, "3"),
    ("[BODY].count > [BODY].data[1].id", HTTP, True, "3"),
    ("[BODY].price == 24.99", HTTP, True, "24.99"),
    ("[BODY].price > 24.9", HTTP, True, "24.99"),
    ("[BODY].price < 25", HTTP, True, "24.99"),
    ("[BODY].ok == true", HTTP, True, "true"),
    ("[BODY].empty == pat(*)", HTTP, True, ""),
    ("[BODY][0].id == 7", Facts(body='[{"id": 7}]'), True, "7"),
    ("[BODY].[0].id == 7", Facts(body='[{"id": 7}]'), True, "7"),
    ("[BODY].payload.file_path == pat(/mnt/*.wav)", RECORDER, True, "/mnt/rec001.wav"),
    ("[BODY].Status == UP", HTTP, False, "n/a (no key 'Status' in the body)"),
    ("[BODY].missing != 1", HTTP, False, "n/a (no key 'missing' in the body)"),
    ("[BODY].gone == null", HTTP, False, "n/a (null in the body)"),
    ("[BODY].data[5].id == 1", HTTP, False, "n/a (no item [5] in the body)"),
    ("[BODY].status.x == 1", HTTP, False, "n/a (no key 'x' in the body)"),
    ("[BODY].data.id == 1", HTTP, False, "n/a (no key 'id' in the body)"),
    ("[BODY].status == UP", Facts(body="<html>UP</html>"), False, "n/a (the body is not JSON)"),
    ("[BODY].status == UP", Facts(body=""), False, "n/a (the body is not JSON)"),
    ("[BODY].status == UP", TCP, False, "n/a"),
    ("[STATUS] == [BODY].missing", HTTP, False, "200"),
    # len(): items of a list, characters of anything else (minified JSON for objects).
    ("len([BODY].data) == 2", HTTP, True, "2"),
    ("len([BODY].data) < 5", HTTP, True, "2"),
    ("len([BODY].data[0].name) == 8", HTTP, True, "8"),
    ("len([BODY].data[0].name) > 8", HTTP, False, "8"),
    ("len([BODY].errors) == 0", HTTP, True, "0"),
    ("len([BODY].nested.a) == 13", HTTP, True, "13"),
    ("len([BODY].count) == 1", HTTP, True, "1"),
    ("len([BODY]) == 3", Facts(body="[1, 2, 3]"), True, "3"),
    ("len([BODY]) == 5", Facts(body=" hello "), True, "5"),
    ("len([BODY]) == 3", Facts(body="[1,"), True, "3"),
    ("len([BODY].missing) == 0", HTTP, False, "n/a (no key 'missing' in the body)"),
    ("len([DNS_RCODE]) == 8", DNS, True, "8"),
    # has(): is the path there (a JSON null is not), is the value not empty.
    ("has([BODY].errors) == true", HTTP, True, "true"),
    ("has([BODY].errors) == false", HTTP, False, "true"),
    ("has([BODY].missing) == false", HTTP, True, "false"),
    ("has([BODY].gone) == false", HTTP, True, "false"),
    ("has([BODY].empty) == true", HTTP, True, "true"),
    ("has([BODY].status) == true", Facts(body="not json"), False, "false"),
    ("has([BODY]) == true", HTTP, True, "true"),
    ("has([BODY]) == false", Facts(body="  "), True, "false"),
    ("has([BODY]) == false", TCP, True, "false"),
    ("has([STATUS]) == false", TCP, True, "false"),
    ("has([STATUS]) != false", HTTP, True, "true"),
]


@pytest.mark.parametrize(("condition", "facts", "success", "actual"), CASES)
def test_condition_evaluates_as_gatus_defines_it(
    condition: str, facts: Facts, success: bool, actual: str
) -> None:
    assert evaluate([condition], facts) == [Verdict(condition, success, actual)]


def test_every_placeholder_and_operator_is_in_the_table() -> None:
    texts = " ".join(case[0] for case in CASES)
    for word in ("[STATUS]", "[RESPONSE_TIME]", "[BODY]", "[CONNECTED]",
                 "[CERTIFICATE_EXPIRATION]", "[DNS_RCODE]", "[APP_STATUS]", "[MSG_STATUS]",
                 " == ", " != ", " < ", " <= ", " > ", " >= ",
                 "len(", "has(", "pat(", "any("):  # fmt: skip
        assert word in texts, word


# (condition, message, position): the exact error a person reads in the 422.
INVALID = [
    ("", "empty condition", 0),
    ("   ", "empty condition", 0),
    ("[STATU] == 200", "unknown placeholder [STATU]", 0),
    ("  [STATU] == 200", "unknown placeholder [STATU]", 2),
    ("[IP] == 127.0.0.1", "unknown placeholder [IP]", 0),
    ("[STATUS == 200", "missing ] to close the placeholder", 0),
    ("STATUS == 200", "expected a placeholder such as [STATUS], len(...) or has(...)", 0),
    ("200 == [STATUS]", "expected a placeholder such as [STATUS], len(...) or has(...)", 0),
    ("[STATUS]", "missing operator (==, !=, <, <=, >, >=)", 8),
    ("[STATUS] 200", "missing operator (==, !=, <, <=, >, >=)", 9),
    ("[BODY]x == 1", "missing operator (==, !=, <, <=, >, >=)", 6),
    ("[STATUS] = 200", "unknown operator = (use ==, !=, <, <=, >, >=)", 9),
    ("[STATUS] =< 200", "unknown operator =< (use ==, !=, <, <=, >, >=)", 9),
    ("[BODY] =~ ok", "unknown operator =~ (use ==, !=, <, <=, >, >=)", 7),
    ("[STATUS] ==", "missing value after ==", 11),
    ("[STATUS] <=   ", "missing value after <=", 14),
    ("pat(*ok*) == [BODY]", "pat() belongs on the right-hand side", 0),
    ("any(200, 201) == [STATUS]", "any() belongs on the right-hand side", 0),
    ("[STATUS] < pat(5*)", "pat() works only with == and !=", 11),
    ("[STATUS] >= any(200, 201)", "any() works only with == and !=", 12),
    ("[BODY] == pat(*ok*", "missing ) at the end of pat(", 18),
    ("[BODY] == pat()", "pat() needs a value", 14),
    ("[STATUS] == any()", "any() needs a value", 16),
    ("[STATUS] == any(200, , 201)", "any() has an empty value", 21),
    ("[STATUS] == any(200, OK)", "[STATUS] is a number, got 'OK'", 21),
    ("[STATUS] == OK", "[STATUS] is a number, got 'OK'", 12),
    ("[STATUS] < 1s", "[STATUS] is a number, got '1s'", 11),
    ("[RESPONSE_TIME] < fast",
     "[RESPONSE_TIME] is milliseconds or a duration (72h, 30d, 1h30m), got 'fast'", 18),
    ("[CERTIFICATE_EXPIRATION] > 3 days",
     "[CERTIFICATE_EXPIRATION] is milliseconds or a duration (72h, 30d, 1h30m), got '3 days'",
     27),
    ("[BODY] < abc", "< needs a number or a duration (72h, 30d, 1h30m), got 'abc'", 9),
    ("[BODY].count >= 1y", ">= needs a number or a duration (72h, 30d, 1h30m), got '1y'", 16),
    ("[CONNECTED] == yes", "[CONNECTED] is true or false, got 'yes'", 15),
    ("[CONNECTED] > false", "[CONNECTED] is true or false: compare it with == or !=", 12),
    ("has([BODY].x) == 1", "has([BODY].x) is true or false, got '1'", 17),
    ("has([BODY].x) > true", "has([BODY].x) is true or false: compare it with == or !=", 14),
    ("[DNS_RCODE] < 3", "[DNS_RCODE] is text: compare it with == or !=", 12),
    ("[DNS_RCODE] == NOERR", "[DNS_RCODE] is one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, "
     "NOTIMP, REFUSED, YXDOMAIN, YXRRSET, NXRRSET, NOTAUTH, NOTZONE, BADVERS, BADSIG, BADKEY, "
     "BADTIME, BADMODE, BADNAME, BADALG, BADTRUNC, BADCOOKIE; got 'NOERR'", 15),
    ("[MSG_STATUS] == ok", "[MSG_STATUS] is one of success, error; got 'ok'", 16),
    ("[APP_STATUS] == any(started, running)",
     "[APP_STATUS] is one of started, stopped, error; got 'running'", 29),
    ("[STATUS].code == 200", "[STATUS] takes no path; only [BODY] does", 8),
    ("[BODY]. == 1", "missing key after .", 7),
    ("[BODY].a[x] == 1", "an index is a whole number, got 'x'", 9),
    ("[BODY].a[-1] == 1", "an index is a whole number, got '-1'", 9),
    ("[BODY].a[0 == 1", "missing ] to close the index", 8),
    ("len([BODY] == 1", "missing ) to close len(", 10),
    ("len(200) == 3", "len() takes a placeholder such as [BODY].items", 4),
    ("has(x) == true", "has() takes a placeholder such as [BODY].items", 4),
    ("len([STATU]) == 3", "unknown placeholder [STATU]", 4),
    ("[STATUS] == [STATU]", "unknown placeholder [STATU]", 12),
    ("[BODY] == [BODY] x", "unexpected text after [BODY]", 17),
    ("[BODY] == len([BODY]) x", "unexpected text after len([BODY])", 22),
]  # fmt: skip


@pytest.mark.parametrize(("condition", "message", "position"), INVALID)
def test_invalid_condition_names_what_and_where(
    condition: str, message: str, position: int
) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(condition)
    error = caught.value
    assert (error.message, error.position, error.condition) == (message, position, condition)
    assert str(error) == f"{message} at {position}"


def test_parse_conditions_says_which_condition_broke() -> None:
    assert [c.text for c in parse_conditions(["[STATUS] == 200", "[CONNECTED] == true"])] == [
        "[STATUS] == 200",
        "[CONNECTED] == true",
    ]
    with pytest.raises(ConditionError) as caught:
        parse_conditions(["[STATUS] == 200", "[BODY].ok == true", "[STATU] == 1"])
    assert (caught.value.index, caught.value.position) == (2, 0)


def test_a_condition_is_parsed_once_and_shared() -> None:
    assert parse_condition("[STATUS] == 204") is parse_condition("[STATUS] == 204")


def test_parsed_conditions_and_texts_evaluate_alike_and_the_body_is_read_once() -> None:
    texts = ["[BODY].status == UP", "len([BODY].data) == 2", "[STATUS] >= 300"]
    parsed = [parse_condition(t) for t in texts]
    assert (
        evaluate(parsed, HTTP)
        == evaluate(texts, HTTP)
        == [
            Verdict("[BODY].status == UP", True, "UP"),
            Verdict("len([BODY].data) == 2", True, "2"),
            Verdict("[STATUS] >= 300", False, "200"),
        ]
    )


def test_a_stored_condition_that_no_longer_parses_fails_without_raising() -> None:
    assert evaluate(["[STATU] == 200"], HTTP) == [
        Verdict("[STATU] == 200", False, "invalid condition: unknown placeholder [STATU] at 0")
    ]


def test_the_placeholders_a_condition_reads() -> None:
    assert parse_condition("[STATUS] > [BODY].min").placeholders == {"STATUS", "BODY"}
    assert parse_condition("has([body].x) == true").placeholders == {"BODY"}


def test_verdict_is_stored_as_the_documented_shape() -> None:
    assert Verdict("[STATUS] < 500", False, "503").as_dict() == {
        "condition": "[STATUS] < 500",
        "success": False,
        "actual": "503",
    }


@pytest.mark.parametrize(
    ("kind", "conditions", "passing", "failing"),
    [
        ("http", ("[STATUS] < 500",), Facts(status=404), Facts(status=500)),
        ("https", ("[STATUS] < 500",), Facts(status=200), REFUSED),
        ("tcp", ("[CONNECTED] == true",), TCP, REFUSED),
        ("tls", ("[CONNECTED] == true",), TCP, REFUSED),
        ("dns", ("[DNS_RCODE] == NOERROR",), Facts(dns_rcode="NOERROR"), DNS),
        ("recorder", ("[MSG_STATUS] == success",), RECORDER, Facts(msg_status="error")),
    ],
)
def test_default_conditions_by_check_kind(
    kind: str, conditions: tuple[str, ...], passing: Facts, failing: Facts
) -> None:
    assert default_conditions(kind) == conditions
    assert judge(passing, default_conditions(kind)).outcome is Outcome.UP
    assert judge(failing, default_conditions(kind)).outcome is Outcome.DOWN


def test_an_unknown_check_kind_has_no_defaults() -> None:
    with pytest.raises(ValueError, match="no check kind 'ftp'"):
        default_conditions("ftp")


PASS, FAIL = Verdict("c", True, "1"), Verdict("c", False, "2")


@pytest.mark.parametrize(
    ("verdicts", "degraded", "expected", "status_up"),
    [
        ([], [], Outcome.UP, True),
        ([PASS, PASS], [], Outcome.UP, True),
        ([PASS], [FAIL, FAIL], Outcome.UP, True),
        ([PASS], [FAIL, PASS], Outcome.DEGRADED, True),
        ([PASS, FAIL], [], Outcome.DOWN, False),
        ([FAIL], [PASS], Outcome.DOWN, False),
    ],
)
def test_outcome_down_degraded_up(
    verdicts: list[Verdict], degraded: list[Verdict], expected: Outcome, status_up: bool
) -> None:
    assert outcome(verdicts, degraded) is expected
    assert expected.status_up is status_up


def test_judge_keeps_every_verdict_and_the_outcome() -> None:
    slow = Facts(status=200, response_time_ms=950.0)
    judgement = judge(slow, ["[STATUS] == 200"], ["[RESPONSE_TIME] > 800"])
    assert judgement.outcome is Outcome.DEGRADED
    assert judgement.verdicts == [Verdict("[STATUS] == 200", True, "200")]
    assert judgement.degraded_verdicts == [Verdict("[RESPONSE_TIME] > 800", True, "950")]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("72h", 259_200_000),
        ("30d", 2_592_000_000),
        ("1h30m", 5_400_000),
        ("1.5h", 5_400_000),
        ("2m30s", 150_000),
        ("500ms", 500),
        ("1500us", 1.5),
        ("1500µs", 1.5),
        ("-5m", -300_000),
        ("+1s", 1000),
        ("1d12h", 129_600_000),
    ],
)
def test_go_durations_in_milliseconds(text: str, ms: float) -> None:
    assert duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["500", "h", "1y", "1 h", "1h-5m", "", "nan", "1e3s"])
def test_not_a_duration(text: str) -> None:
    assert duration_ms(text) is None


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (250, "250ms"),
        (45_000, "45s"),
        (75_000, "1m15s"),
        (259_200_000, "72h"),
        (5_400_000, "1h30m"),
        (3_615_000, "1h0m15s"),
        (-7_200_000, "-2h"),
    ],
)
def test_durations_shown_as_gatus_shows_them(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize(
    "module", [jobs.probe.conditions, jobs.probe.syntax, jobs.probe.placeholders]
)
def test_docstring_examples_hold(module: object) -> None:
    failed, attempted = doctest.testmod(module)  # type: ignore[arg-type]
    assert attempted > 0
    assert failed == 0
