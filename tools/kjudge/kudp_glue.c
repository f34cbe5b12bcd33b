/* kudp_glue.c -- includes the kernel's nf_conntrack_proto_udp.c (KUDP_SRC, unmodified) and
 * exports one entry point per step of nf_conntrack_in() for UDP, whatever the layout:
 *   kj_init()             the per-netns init (udp_init_net() / nf_conntrack_udp_init_net())
 *   kj_error(hook)        3.10/4.19: l4proto->error, run before the lookup; later: inside packet
 *   kj_packet(ct, ctinfo, hook)   udp_new() for an unconfirmed entry, then the packet function */
#include KUDP_SRC
#include <stdarg.h>

int vsnprintf(char *s, size_t n, const char *fmt, va_list ap);
unsigned long jiffies;
struct net kj_net;
struct sk_buff kj_skb;
int kj_bad_csum;
char kj_logbuf[256];
long kj_refreshed = -1;

void kj_refresh(struct nf_conn *ct, unsigned long extended) { (void)ct; kj_refreshed = (long)extended; }
int kj_checksum_bad(void) { return kj_bad_csum; }
void kj_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kj_logbuf, sizeof(kj_logbuf), fmt, ap);
	va_end(ap);
}
int seq_printf(struct seq_file *m, const char *fmt, ...) { (void)m; (void)fmt; return 0; }

unsigned int *kj_timeouts(void) { return nf_udp_pernet(&kj_net)->timeouts; }

void kj_init(void)
{
#if defined(KUDP_L310) || defined(KUDP_L419)
	udp_init_net(&kj_net, AF_INET);
#else
	nf_conntrack_udp_init_net(&kj_net);
#endif
}

#if defined(KUDP_L310) || defined(KUDP_L419)
int kj_error(unsigned int hook)
{
#ifdef KUDP_ERROR_HAS_CTINFO
	enum ip_conntrack_info ctinfo;
	return udp_error(&kj_net, NULL, &kj_skb, 20, &ctinfo, PF_INET, hook);
#else
	return udp_error(&kj_net, NULL, &kj_skb, 20, PF_INET, hook);
#endif
}
#endif

int kj_packet(struct nf_conn *ct, enum ip_conntrack_info ctinfo, unsigned int hook)
{
#if defined(KUDP_L310)
	if (!nf_ct_is_confirmed(ct) && !udp_new(ct, &kj_skb, 20, udp_get_timeouts(&kj_net)))
		return -NF_ACCEPT;
	return udp_packet(ct, &kj_skb, 20, ctinfo, PF_INET, hook, udp_get_timeouts(&kj_net));
#elif defined(KUDP_L419)
	if (!nf_ct_is_confirmed(ct) && !udp_new(ct, &kj_skb, 20))
		return -NF_ACCEPT;
	(void)hook;
	return udp_packet(ct, &kj_skb, 20, ctinfo);
#else
	struct nf_hook_state state = { .hook = hook, .pf = PF_INET, .net = &kj_net };
	return nf_conntrack_udp_packet(ct, &kj_skb, 20, ctinfo, &state);
#endif
}
