"""The sentence judge of ``nflab grade`` as properties: for each exercise that asks for a
sentence (02, 05-09), any wording of its links (phrases typed in here, English and Chinese)
earns the point when chained cause before effect, by a forward joint ("A, so B") or a backward
one ("B because A"), and loses it when the same links are chained effect first, or one is left
out. The links themselves are the instructor's key (instructor/quiz-key.toml). And whatever a
student hands in, the gradebook row stays within the rubric, its notes one line each."""

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.report.grade import Lab, grade_student, items, judge_sentence, load_key

ROOT = Path(__file__).resolve().parents[2]
KEY = load_key(ROOT / "instructor" / "quiz-key.toml")
SOLUTIONS = ROOT / "instructor" / "solutions"

# per exercise, per link in the key's (causal) order: ways a student says it
PHRASES = {
    "02": (
        ("NAT skipped it", "the reply has no conntrack entry to translate it", "NAT 没有转换它"),
        ("it is addressed to the host itself", "its destination stays 10.21.17.99", "目的地址还是宿主机"),
        ("it is routed to INPUT", "the routing decision delivers it locally", "路由判定为本地"),
    ),
    "05": (
        ("the two queries get different NAT", "their DNAT picks another endpoint", "两个查询的 NAT 不同"),
        ("el7 cannot merge the loser", "el7 does not merge it", "el7 无法合并它"),
        ("the loser is dropped", "insert_failed counts it", "它被丢弃"),
    ),
    "06": (
        (
            "neither SYN is confirmed yet",
            "the port search sees only confirmed entries",
            "两个条目都还没有确认",
        ),
        ("both keep the same port", "MASQUERADE keeps port 39000 for both", "两个 SYN 保留同一个端口"),
        ("they clash at confirmation", "the second SYN is dropped", "后确认的那个冲突"),
    ),
    "07": (
        ("flow 2 never completes its handshake", "flow 2 gets no handshake ACK", "流 2 的握手没有完成"),
        ("its entry is not ASSURED", "the entry never becomes ASSURED", "它的条目不是 ASSURED"),
        ("early_drop() evicts it", "early_drop makes room for flow 3", "early_drop() 驱逐了它"),
    ),
    "08": (
        (
            "the datagrams belong to an existing entry",
            "NAT rules are read only for the first packet",
            "NAT 规则只在第一个包时查",
        ),
        (
            "the entry keeps its old DNAT to ctr",
            "the stored binding still points at 192.0.2.2",
            "条目保留原来的 DNAT",
        ),
        ("I delete that entry", "conntrack -D removes it", "我删除这个条目"),
    ),
    "09": (
        (
            "the FIN is addressed to the server",
            "its destination is 198.51.100.2, not the host",
            "FIN 发往服务器",
        ),
        ("the routing decision forwards it", "it is routed on", "路由判定转发它"),
        ("it crosses FORWARD, never INPUT", "only DOCKER-USER and FORWARD see it", "它经过 FORWARD"),
    ),
}
THEN = (", so ", "; therefore ", " -> ", "，所以", ", which leads to ")
SINCE = (" because ", " since ", "，因为", " due to ")


@st.composite
def chains(draw):
    """An exercise, one phrase per link of it, and two joints of each kind."""
    number = draw(st.sampled_from(sorted(PHRASES)))
    said = [draw(st.sampled_from(ways)) for ways in PHRASES[number]]
    return (
        number,
        said,
        [draw(st.sampled_from(THEN)) for _ in range(2)],
        [draw(st.sampled_from(SINCE)) for _ in range(2)],
    )


def test_the_phrases_are_the_keys_exercises_and_links():
    assert sorted(PHRASES) == sorted(KEY.why)
    assert all(len(PHRASES[n]) == len(KEY.why[n]) for n in PHRASES)


@given(chains())
def test_cause_before_effect_earns_the_point(chain):
    number, (a, b, c), then, since = chain
    assert judge_sentence(f"{a}{then[0]}{b}{then[1]}{c}", KEY.why[number]) == ""
    assert judge_sentence(f"{c}{since[0]}{b}{since[1]}{a}", KEY.why[number]) == ""


@given(chains())
def test_effect_before_cause_loses_it(chain):
    number, (a, b, c), then, since = chain
    for sentence in (f"{c}{then[0]}{b}{then[1]}{a}", f"{a}{since[0]}{b}{since[1]}{c}"):
        assert judge_sentence(sentence, KEY.why[number]).startswith("names every link, but "), sentence


@given(chains(), st.integers(0, 2))
def test_a_link_left_out_loses_it_and_is_named(chain, left_out):
    number, said, then, _since = chain
    kept = [s for i, s in enumerate(said) if i != left_out]
    link = list(KEY.why[number])[left_out]
    assert judge_sentence(then[0].join(kept), KEY.why[number]) == f"does not say: {link}"


# ---------------------------------------------------------------- any file, one row


@st.composite
def handed_in(draw):
    """What a student may hand in: any text or bytes, or a solution with one line changed."""
    kind = draw(st.sampled_from(("text", "bytes", "solution")))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    sol = draw(st.sampled_from(sorted(SOLUTIONS.glob("0[5-9]-*"))))
    lines = sol.read_text().split("\n")
    at = draw(st.integers(0, len(lines) - 1))
    lines[at] = draw(
        st.sampled_from(("", "x = 0", "answer = 0", "[[step]]", lines[at][: len(lines[at]) // 2]))
    )
    return "\n".join(lines).encode()


@settings(max_examples=25)
@given(st.dictionaries(st.sampled_from(("05.toml", "07.toml", "09.toml", "quiz.toml")), handed_in()))
def test_any_files_give_one_row_within_the_rubric(files):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "student"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        row = grade_student(folder, KEY, Lab.BOTH)
    full = items(KEY, Lab.BOTH)
    assert set(row.points) <= set(full)
    assert all(0 <= row.points[item] <= full[item] for item in row.points)
    assert all("\n" not in note and "Traceback" not in note for note in row.notes)
