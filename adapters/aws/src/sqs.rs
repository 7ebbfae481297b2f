//! The SQS adapter: messages out (export jobs, dead letters), and the receive and delete
//! the local runner needs to stand in for Lambda's event source mapping.

use async_trait::async_trait;
use audit::ports::{MessageQueue, Outgoing, QueueError};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;

/// One queue.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: Option<String>,
    pub receipt_handle: Option<String>,
    pub body: Option<String>,
}

impl Queue {
    #[must_use]
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Up to `max` messages, waiting up to `wait_seconds` for one.
    ///
    /// # Errors
    /// When the queue cannot be read.
    pub async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Received>, aws_sdk_sqs::Error> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .send()
            .await?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received { message_id: m.message_id, receipt_handle: m.receipt_handle, body: m.body })
            .collect())
    }

    /// Deletes a message that was handled.
    ///
    /// # Errors
    /// When the queue cannot be reached.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), aws_sdk_sqs::Error> {
        self.client.delete_message().queue_url(&self.url).receipt_handle(receipt_handle).send().await?;
        Ok(())
    }
}

#[async_trait]
impl MessageQueue for Queue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        let mut req = self.client.send_message().queue_url(&self.url).message_body(message.body);
        if message.delay_seconds > 0 {
            req = req.delay_seconds(i32::try_from(message.delay_seconds).unwrap_or(900).min(900));
        }
        for (name, value) in &message.attributes {
            let attr = MessageAttributeValue::builder().data_type("String").string_value(value).build();
            req = req.message_attributes(name, attr.map_err(|e| QueueError(e.to_string()))?);
        }
        req.send().await.map(|_| ()).map_err(|e| QueueError(format!("{e:?}")))
    }
}
