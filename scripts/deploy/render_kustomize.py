"""Renders a kustomization (the subset bertqa's k8s/ uses: resources, labels with
includeSelectors, images, JSON 6902 patches) to one multi-document YAML, so CI can validate the
manifests as a cluster would receive them without kubectl or kustomize binaries.

Usage: python render_kustomize.py KUSTOMIZATION_DIR > rendered.yaml
"""
import copy
import os
import sys

import jsonpatch
import yaml


def render(folder):
    with open(os.path.join(folder, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    documents = []
    for resource in kustomization.get("resources", []):
        path = os.path.join(folder, resource)
        if os.path.isdir(path):
            documents.extend(render(path))
        else:
            with open(path) as f:
                documents.extend(d for d in yaml.safe_load_all(f) if d)
    for label in kustomization.get("labels", []):
        for doc in documents:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
            if label.get("includeSelectors"):
                add_to_selectors(doc, label["pairs"])
    for image in kustomization.get("images", []):
        for doc in documents:
            for container in containers(doc):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = "%s:%s" % (image.get("newName", name), image.get("newTag", tag))
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        operations = yaml.safe_load(patch["patch"])
        matched = [d for d in documents
                   if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
        if not matched:
            sys.exit("%s: patch target %s/%s not found" % (folder, target["kind"], target["name"]))
        for doc in matched:
            documents[documents.index(doc)] = jsonpatch.apply_patch(doc, operations)
    return documents


def add_to_selectors(doc, pairs):
    spec = doc.get("spec", {})
    if doc["kind"] == "Service":
        spec.setdefault("selector", {}).update(pairs)
    elif "selector" in spec and isinstance(spec["selector"], dict) and "matchLabels" in spec["selector"]:
        spec["selector"]["matchLabels"].update(pairs)
    template = spec.get("template")
    if template:
        template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


if __name__ == "__main__":
    yaml.safe_dump_all([copy.deepcopy(d) for d in render(sys.argv[1])], sys.stdout, sort_keys=False)
