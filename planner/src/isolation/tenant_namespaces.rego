# kplan: keeps tenant subjects out of the platform's namespaces and out of
# other tenants' namespaces in a merged target (issue 14). Rego v0 syntax,
# as Gatekeeper's `rego` field evaluates it.
#
# input.parameters.protectedNamespaces: names or `prefix*` patterns (the
#   policy's platform namespaces: kube-system, default, ...).
# input.parameters.subjects: one entry per tenant subject of an RBAC finding:
#   kind (User, Group; a service account is the User
#   system:serviceaccount:NS:NAME) and name, and the namespaces where it
#   could act before the merge.
# input.parameters.tenantNamespaces: every namespace that moves into the
#   target, by its name there.
#
# A request by a listed subject (its user name, or one of its groups) into
# a guarded namespace (a protected one or a tenant namespace of the
# target) is refused unless one of the entries it matches lists that
# namespace.
package kplantenantnamespaces

violation[{"msg": msg}] {
	ns := input.review.namespace
	ns != ""
	count(matched) > 0
	guarded(ns)
	not allowed[ns]
	msg := sprintf("%v may not act in namespace %v after the merge (kplan tenant isolation: %v)", [input.review.userInfo.username, ns, concat(", ", sort(matched))])
}

matched[who] {
	entry := input.parameters.subjects[_]
	is_subject(entry)
	who := sprintf("%v %v", [entry.kind, entry.name])
}

allowed[ns] {
	entry := input.parameters.subjects[_]
	is_subject(entry)
	ns := entry.namespaces[_]
}

is_subject(entry) {
	entry.kind == "User"
	entry.name == input.review.userInfo.username
}

is_subject(entry) {
	entry.kind == "Group"
	entry.name == input.review.userInfo.groups[_]
}

guarded(ns) {
	input.parameters.tenantNamespaces[_] == ns
}

guarded(ns) {
	input.parameters.protectedNamespaces[_] == ns
}

guarded(ns) {
	pattern := input.parameters.protectedNamespaces[_]
	endswith(pattern, "*")
	startswith(ns, trim_suffix(pattern, "*"))
}
