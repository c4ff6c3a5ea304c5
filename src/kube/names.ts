/**
 * Kubernetes' naming rules the agent needs (k8s.io/apimachinery validation and kubelet's
 * IsExtendedResourceName), in one place: the config checks resource names with them, the kubelet
 * simulator refuses a registration the way kubelet does, and node labels are checked before publishing.
 */

/** RFC 1123 labels joined by dots: lower-case letters, digits and `-`, each label starting and ending alphanumeric. */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const QUALIFIED_NAME_MAX_LENGTH = 63;

/** apimachinery's IsDNS1123Subdomain. */
export function isDns1123Subdomain(value: string): boolean {
  return value.length <= DNS1123_SUBDOMAIN_MAX_LENGTH && DNS1123_SUBDOMAIN.test(value);
}

/** apimachinery's IsQualifiedName: `[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63 chars. */
export function isQualifiedName(value: string): boolean {
  const parts = value.split('/');
  if (parts.length > 2) return false;
  const name = parts.at(-1)!;
  if (parts.length === 2 && (parts[0] === '' || !isDns1123Subdomain(parts[0]!))) return false;
  return name.length > 0 && name.length <= QUALIFIED_NAME_MAX_LENGTH && QUALIFIED_NAME_PART.test(name);
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_VALUE_MAX_LENGTH = 63;

/** apimachinery's IsValidLabelValue: empty, or ≤ 63 alphanumerics, `-`, `_`, `.` starting and ending alphanumeric. */
export function isLabelValue(value: string): boolean {
  return value.length <= LABEL_VALUE_MAX_LENGTH && LABEL_VALUE.test(value);
}

/**
 * The names kubelet accepts from a device plugin: domain-prefixed (contains `/`), not in the
 * `kubernetes.io/` namespace, not starting with `requests.`, and `requests.<name>` is a qualified name.
 */
export function isExtendedResourceName(name: string): boolean {
  if (!name.includes('/') || name.includes('kubernetes.io/')) return false;
  if (name.startsWith('requests.')) return false;
  return isQualifiedName(`requests.${name}`);
}
