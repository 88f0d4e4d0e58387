"""The national catalogue as printed in the #APTICulteur guide."""

from __future__ import annotations

import pytest

from aptic import referentiel as ref


def test_129_unique_numbers() -> None:
    assert sorted(ref.SERVICES) == list(range(1, 130))


def test_counts_per_category_follow_the_numbered_lists() -> None:
    counts = [len(ref.in_category(code)) for code in ("1.1", "1.2", "2.1", "2.2", "3.1", "3.2", "3.3", "3.4", "3.5")]
    assert counts == [23, 18, 42, 12, 3, 4, 6, 15, 6]


@pytest.mark.parametrize(
    ("number", "title", "category", "level"),
    [
        (1, "Composantes et facettes de l’identité numérique", "1.1", 1),
        (23, "Les mécanismes excessifs ou addictifs liés au numérique", "1.1", 1),
        (41, "Neutralité du net : de quoi parle-t-on ?", "1.2", 1),
        (52, "Gérer ses données : Sauvegardes locales (disques durs externes, clé USB)", "2.1", 2),
        (84, "Pôle Emploi : faire ses déclarations en ligne", "2.2", 2),
        (95, "Plateforme France Connect", "2.2", 2),
        (102, "Organiser et partager sa veille", "3.2", 3),
        (119, "Internet : déposer une annonce sur Le Bon Coin ou autre site de petites annonces", "3.4", 3),
        (129, "Découvrir les métiers du numérique", "3.5", 3),
    ],
)
def test_titles_as_printed(number: int, title: str, category: str, level: int) -> None:
    s = ref.service(number)
    assert (s.title, s.category.code, s.level) == (title, category, level)


def test_names_of_levels_and_categories() -> None:
    assert ref.service(95).level_name == "Maîtriser le numérique"
    assert ref.service(95).category.name == "Faire ses démarches en ligne"
    assert ref.service(1).as_dict() == {
        "number": 1,
        "title": "Composantes et facettes de l’identité numérique",
        "level": 1,
        "category": "1.1",
        "category_name": "S’informer",
    }


def test_unknown_number_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        ref.service(130)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("france connect", [95]),
        ("FRANCE CONNECT", [95]),
        ("telephonie", [27]),  # "Téléphonie" without accents
        ("identite numerique", [1, 96, 97, 98]),  # 98 through its category name
        ("l'identité", [1]),  # a plain apostrophe finds the typographic one
        ("95", [95]),
        ("wikipedia contribuer", [99]),
    ],
)
def test_search_ignores_case_and_accents(words: str, expected: list[int]) -> None:
    assert [s.number for s in ref.search(words)] == expected


def test_search_by_category_name() -> None:
    assert [s.number for s in ref.search("démarches")] == list(range(84, 96))


def test_parse_selection_of_numbers_ranges_and_categories() -> None:
    assert ref.parse_selection("84-86, 1.2,7") == (frozenset({84, 85, 86, 7}), frozenset({"1.2"}))
    for bad in ("130", "4.4", "9-3"):
        with pytest.raises(ValueError):
            ref.parse_selection(bad)
