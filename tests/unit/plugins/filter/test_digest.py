# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.netsvc.resilience.plugins.filter import digest


def _tree(tmp_path, text):
    (tmp_path / "plugins" / "modules").mkdir(parents=True, exist_ok=True)
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True, exist_ok=True)
    (tmp_path / "plugins" / "modules" / "m.py").write_text(text)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text(u"---\n")
    return str(tmp_path)


def test_same_inputs_same_digest_key_order_irrelevant(tmp_path):
    top = _tree(tmp_path, u"code v1\n")
    assert digest.inputs_digest({"a": 1, "b": [1, 2]}, top) == digest.inputs_digest({"b": [1, 2], "a": 1}, top)
    assert digest.inputs_digest({"a": 1}, top) != digest.inputs_digest({"a": 2}, top)


def test_code_change_changes_the_digest(tmp_path):
    one = _tree(tmp_path / "one", u"code v1\n")
    two = _tree(tmp_path / "two", u"code v2\n")
    assert digest.inputs_digest({"a": 1}, one) != digest.inputs_digest({"a": 1}, two)
    assert digest.code_digest(one) == digest.code_digest(one)


def test_the_real_collection_tree_is_digested():
    assert len(digest.code_digest()) == 64


def test_unserialisable_input_is_an_error_naming_the_problem(tmp_path):
    top = _tree(tmp_path, u"x\n")
    with pytest.raises(AnsibleFilterError) as e:
        digest.inputs_digest({1: {2}, (1, 2): 3}, top)
    assert "not JSON-serialisable" in str(e.value)
